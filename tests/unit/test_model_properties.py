"""Property tests of the attribution core, driven through the engine as users would drive it."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.attribution.fitting import fit
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.models import MODEL_NAMES
from pipeline.backfill.journeys import journeys_of_events
from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.money.currency import MINOR_UNITS
from pipeline.money.exact import RatesTable
from pipeline.synthetic import CHANNELS
from pipeline.units import DAY_MS
from tests.unit.helpers import T0, conv, tp

RATES = RatesTable("USD", {c: Decimal("1.37") for c in MINOR_UNITS if c != "USD"})


def _learned() -> LearnedWeights:
    events = []
    for u in range(400):
        chans = [CHANNELS[(u * 7 + k) % 5] for k in range(1 + u % 4)]
        for k, ch in enumerate(chans):
            events.append(tp(f"t{u}-{k}", k, user=f"u{u}", channel=ch))
        if "search" in chans or u % 3 == 0:
            events.append(conv(f"c{u}", len(chans) + 1, user=f"u{u}"))
    events.sort(key=lambda e: e.timestamp_ms)
    events += [tp(f"close{i}", 30 * 24, user="closing-user") for i in range(16)]  # close every window
    return fit(journeys_of_events(events, EngineConfig()), min_journeys=10)


LEARNED = _learned()

journeys = st.lists(
    st.tuples(st.integers(0, 7 * 24 * 60), st.sampled_from(CHANNELS)), min_size=1, max_size=25
)


def _attribute(model: str, touches: list[tuple[int, str]], value: str, currency: str) -> list[AttributedReward]:
    e = AttributionEngine(EngineConfig(default_model=model, rates=RATES), LEARNED)
    for i, (minute, ch) in enumerate(sorted(touches)):  # arrive in event-time order
        e.process(tp(f"t{i:03d}", minute / 60, channel=ch))
    return e.process(conv("c", 7 * 24, value=value, currency=currency))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODEL_NAMES), journeys, st.sampled_from(sorted(MINOR_UNITS)), st.integers(0, 10**9))
def test_every_model_adds_up_exactly_in_every_currency(model: str, touches: list[tuple[int, str]],
                                                       currency: str, minor: int) -> None:
    value = str(Decimal(minor).scaleb(-MINOR_UNITS[currency]))
    out = _attribute(model, touches, value, currency)
    assert len(out) == len(touches)
    assert sum(r.local_amount_minor or 0 for r in out) == minor
    assert sum(r.amount_minor for r in out) == RATES.to_base_minor(minor, currency)


@given(st.lists(st.integers(0, 7 * 24 * 60), min_size=1, max_size=25, unique=True), st.randoms())
def test_linear_is_invariant_to_touchpoint_arrival_order(minutes: list[int], rnd: random.Random) -> None:
    def run(order: list[int]) -> dict[str, int]:
        # lateness covers the whole window, so any arrival order is accepted
        e = AttributionEngine(EngineConfig(default_model="linear", allowed_lateness_ms=8 * DAY_MS))
        for m in order:
            e.process(tp(f"t{m:05d}", m / 60))
        return {r.touchpoint_id: r.amount_minor for r in e.process(conv("c", 7 * 24, "100.00"))}

    shuffled = list(minutes)
    rnd.shuffle(shuffled)
    assert run(shuffled) == run(sorted(minutes))


@given(journeys, st.integers(1, 10**8))
def test_time_decay_never_pays_an_older_touch_more(touches: list[tuple[int, str]], cents: int) -> None:
    out = _attribute("time_decay", touches, str(Decimal(cents).scaleb(-2)), "USD")
    by_time = sorted(out, key=lambda r: (r.touch_time_ms, r.touchpoint_id))
    for older, newer in itertools.pairwise(by_time):
        if older.touch_time_ms < newer.touch_time_ms:
            assert older.amount_minor <= newer.amount_minor


@pytest.mark.parametrize(("offset_ms", "eligible"), [(0, True), (-1, False), (7 * DAY_MS, True)])
def test_window_boundaries_are_inclusive(offset_ms: int, eligible: bool) -> None:
    # conversion at T0 + 7 days with a 7-day window: [T0, T0 + 7 days] is eligible, T0 − 1 ms is not
    e = AttributionEngine(EngineConfig(allowed_lateness_ms=8 * DAY_MS, max_future_skew_ms=8 * DAY_MS))
    e.process(dataclasses.replace(tp("edge", 0), timestamp_ms=T0 + offset_ms))
    out = e.process(conv("c", 7 * 24))
    assert any(r.kind is RewardKind.ATTRIBUTION for r in out) is eligible


def test_per_event_type_windows() -> None:
    e = AttributionEngine(EngineConfig(windows_ms={"signup": DAY_MS}))
    e.process(tp("old", 0))
    e.process(tp("recent", 30))
    out = e.process(conv("s", 48, value="10", event="signup"))
    assert {r.touchpoint_id for r in out} == {"recent"}
    out = e.process(conv("p", 48, value="10", event="purchase"))
    assert {r.touchpoint_id for r in out} == {"old", "recent"}


def _full_run() -> list[tuple[str, str | None, str, int, int]]:
    e = AttributionEngine(EngineConfig(default_model="time_decay"))
    out: list[AttributedReward] = []
    for i in range(10):
        out += e.process(tp(f"t{i}", i * 5, channel=CHANNELS[i % 5]))
        if i % 3 == 2:
            out += e.process(conv(f"c{i}", i * 5 + 1, value="33.33"))
    out += e.flush()
    return [(str(r.kind), r.conversion_id, r.touchpoint_id, r.revision, r.amount_minor) for r in out]


def test_results_do_not_depend_on_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _full_run()
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    monkeypatch.setattr(time, "time_ns", lambda: 4_000_000_000 * 10**9)
    monkeypatch.setattr(time, "monotonic", lambda: 12345.0)
    assert _full_run() == first
    assert any(k == str(RewardKind.FINAL) for k, *_ in first)


def test_one_touch_takes_all_two_take_half_under_position_based() -> None:
    e = AttributionEngine(EngineConfig(default_model="position_based"))
    e.process(tp("a", 0))
    assert [r.amount_minor for r in e.process(conv("c1", 1, "10"))] == [1000]
    e.process(tp("b", 2))
    assert [r.amount_minor for r in e.process(conv("c2", 3, "10"))] == [500, 500]
