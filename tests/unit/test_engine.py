"""The journey state machine: corrections, refunds, duplicates, finality, bounded state, bad input."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from pipeline.attribution.money import RatesTable
from pipeline.engine import DAY_MS, AttributionEngine, EngineConfig
from pipeline.events.errors import InvalidEvent, LateEvent
from pipeline.events.types import AttributedReward, RewardKind
from tests.unit.helpers import T0, amounts, conv, engine, tp


def kinds(rewards: list[AttributedReward]) -> list[str]:
    return [str(r.kind) for r in rewards]


def test_a_touch_earns_from_every_conversion_in_its_window() -> None:
    e = engine()
    e.process(tp("t1", 0))
    a = e.process(conv("c1", 1, "10"))
    b = e.process(conv("c2", 2, "30"))
    assert amounts(a) == {"t1": 1000} and amounts(b) == {"t1": 3000}
    finals = e.flush()
    assert [(r.kind, r.amount_minor) for r in finals] == [(RewardKind.FINAL, 4000)]


def test_late_touchpoint_resplits_with_a_new_revision_that_adds_up() -> None:
    e = engine()  # lateness 1 h
    e.process(tp("t1", 0))
    e.process(tp("t3", 10))
    first = e.process(conv("c1", 10.5, "100"))
    assert {r.revision for r in first} == {0} and amounts(first) == {"t1": 5000, "t3": 5000}
    late = e.process(tp("t2", 10.2))  # arrives after the conversion, within lateness
    assert kinds(late) == ["correction"] * 3
    assert {r.revision for r in late} == {1}
    assert amounts(late) == {"t1": 3334, "t2": 3333, "t3": 3333}
    assert [r.position for r in late] == [0, 1, 2]
    finals = {r.touchpoint_id: r.amount_minor for r in e.flush()}
    assert finals == {"t1": 3334, "t2": 3333, "t3": 3333}


def test_conversion_without_touches_is_attributed_when_a_late_touch_arrives() -> None:
    e = engine()
    assert e.process(conv("c1", 5, "10")) == []
    out = e.process(tp("t1", 4.5))
    assert kinds(out) == ["attribution"] and out[0].revision == 0 and out[0].amount_minor == 1000


def test_touchpoint_later_than_the_allowed_lateness_is_refused_and_changes_nothing() -> None:
    e = engine()
    e.process(tp("t1", 0))
    e.process(tp("t2", 10))
    before = copy.deepcopy(dict(e.store))
    with pytest.raises(LateEvent):
        e.process(tp("old", 8.5))  # watermark = 10 h − 1 h
    assert dict(e.store) == before


def test_refund_mirrors_the_split_exactly() -> None:
    e = engine(default_model="time_decay")
    for tid, h in (("a", 0), ("b", 5), ("c", 9)):
        e.process(tp(tid, h))
    sale = amounts(e.process(conv("c1", 10, "99.99")))
    refund = e.process(conv("r1", 20, "99.99", refund_of="c1", event="refund"))
    assert kinds(refund) == ["refund"] * 3
    assert amounts(refund) == {k: -v for k, v in sale.items()}
    assert {r.touchpoint_id: r.amount_minor for r in e.flush()} == {"a": 0, "b": 0, "c": 0}


def test_partial_refunds_are_proportional_and_the_last_one_takes_the_rest() -> None:
    e = engine()
    for tid, h in (("a", 0), ("b", 1), ("c", 2)):
        e.process(tp(tid, h))
    e.process(conv("c1", 3, "100"))  # 33.34 / 33.33 / 33.33
    first = e.process(conv("r1", 4, "10", refund_of="c1", event="refund"))
    assert sum(r.amount_minor for r in first) == -1000
    second = e.process(conv("r2", 5, "90", refund_of="c1", event="refund"))
    assert sum(r.amount_minor for r in second) == -9000
    assert {r.amount_minor for r in e.flush()} == {0}
    with pytest.raises(InvalidEvent):
        e.process(conv("r3", 6, "0.01", refund_of="c1", event="refund"))


@pytest.mark.parametrize(
    ("refund", "field"),
    [
        (conv("r", 2, "10", refund_of="nope", event="refund"), "refund_of"),
        (conv("r", 2, "500", refund_of="c1", event="refund"), "value"),
        (conv("r", 2, "10", refund_of="c1", event="refund", currency="EUR"), "currency"),
    ],
)
def test_bad_refunds_are_refused_by_field(refund: object, field: str) -> None:
    e = AttributionEngine(EngineConfig(rates=RatesTable("USD", {"EUR": Decimal("1.1")})))
    e.process(tp("a", 0))
    e.process(conv("c1", 1, "100"))
    before = copy.deepcopy(dict(e.store))
    with pytest.raises(InvalidEvent) as info:
        e.process(refund)  # type: ignore[arg-type]
    assert info.value.field == field
    assert dict(e.store) == before


def test_refund_is_resplit_when_a_late_touch_corrects_its_conversion() -> None:
    e = engine()
    e.process(tp("a", 0))
    e.process(conv("c1", 10, "100"))
    e.process(conv("r1", 10.1, "100", refund_of="c1", event="refund"))
    out = e.process(tp("b", 9.5))
    assert sorted(kinds(out)) == ["correction", "correction", "refund", "refund"]
    refunds = [r for r in out if r.kind is RewardKind.REFUND]
    assert {r.revision for r in refunds} == {1} and sum(r.amount_minor for r in refunds) == -10000
    assert {r.amount_minor for r in e.flush()} == {0}


def test_duplicates_are_counted_and_never_paid_twice() -> None:
    e = engine()
    e.process(tp("t1", 0))
    assert e.process(tp("t1", 0)) == []
    e.process(conv("c1", 1, "10"))
    assert e.process(conv("c1", 1, "10")) == []
    assert (e.stats.duplicate_touchpoints, e.stats.duplicate_conversions) == (1, 1)
    assert [r.amount_minor for r in e.flush()] == [1000]


def test_final_is_emitted_once_when_the_window_passes_the_watermark_then_state_is_gone() -> None:
    e = engine()  # window 7 days, lateness 1 h
    e.process(tp("t1", 0, user="a"))
    assert e.process(tp("t2", 7 * 24, user="b")) == []  # watermark = 7 d − 1 h: not yet
    out = e.process(tp("t3", 7 * 24 + 1.01, user="b"))  # watermark just past t1 + 7 days
    assert [(r.kind, r.touchpoint_id, r.amount_minor) for r in out] == [(RewardKind.FINAL, "t1", 0)]
    assert "a" not in e.store
    assert e.stats.pending_touchpoints == 2


def test_state_stays_bounded_by_the_window_not_by_history() -> None:
    e = engine(refund_retention_ms=2 * DAY_MS)
    for day in range(60):
        for u in range(20):
            e.process(tp(f"t{day}-{u}", day * 24 + u * 0.01, user=f"user{u}"))
            if u % 4 == 0:
                e.process(conv(f"c{day}-{u}", day * 24 + u * 0.01 + 0.001, "5", user=f"user{u}"))
        open_touches = sum(len(j.touches) for j in e.store.values())
        assert open_touches <= 20 * 9  # at most window + lateness worth of days per user
        assert sum(len(j.splits) for j in e.store.values()) <= 5 * 4


def test_journey_cap_drops_the_oldest_with_a_final_and_counts_it() -> None:
    e = engine(max_journey_length=3)
    out = []
    for i in range(5):
        out += e.process(tp(f"t{i}", i * 0.1))
    assert [(r.kind, r.touchpoint_id) for r in out] == [(RewardKind.FINAL, "t0"), (RewardKind.FINAL, "t1")]
    assert e.stats.dropped_touchpoints == 2
    assert len(e.store["u1"].touches) == 3


def test_future_timestamps_far_ahead_of_event_time_are_refused() -> None:
    e = engine()
    e.process(tp("t1", 0))
    with pytest.raises(InvalidEvent, match="future"):
        e.process(tp("t2", 24 * 30))
    assert e.max_seen_ms == T0


def test_unknown_currency_rate_is_an_error_not_a_guess() -> None:
    e = engine()
    e.process(tp("t1", 0))
    with pytest.raises(InvalidEvent) as info:
        e.process(conv("c1", 1, "10", currency="EUR"))
    assert info.value.field == "currency"


def test_expiry_runs_in_bounded_slices() -> None:
    e = engine()
    for u in range(50):
        e.apply(tp(f"t{u}", 0, user=f"u{u}"))
    wm = T0 + 8 * DAY_MS
    total = []
    while batch := e.advance_to(wm, limit=7):
        assert len(batch) <= 7
        total += batch
    assert len(total) == 50 and not e.store


def test_conversion_model_override() -> None:
    e = engine()
    e.process(tp("a", 0))
    e.process(tp("b", 1))
    out = e.process(conv("c1", 2, "10", model="last_click"))
    assert amounts(out) == {"a": 0, "b": 1000} and {r.model for r in out} == {"last_click"}




def test_a_refund_dated_after_the_window_is_a_separate_fact_not_part_of_the_final() -> None:
    e = engine()
    e.process(tp("a", 0))
    e.process(conv("c1", 1, "50"))
    e.process(tp("other", 24 * 5, user="u2"))
    refund = e.process(conv("r1", 24 * 8, "50", refund_of="c1", event="refund"))  # day 8: after a's window
    assert [r.amount_minor for r in refund if r.kind is RewardKind.REFUND] == [-5000]
    finals = [r for r in refund + e.flush() if r.kind is RewardKind.FINAL]
    assert [(r.touchpoint_id, r.amount_minor) for r in finals] == [("a", 5000), ("other", 0)]
