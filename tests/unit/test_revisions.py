"""Every fact about a conversion comes with a higher revision than the one before it, on every output path: a
reader that keeps the highest revision per conversion (any sink) then keeps the last word. A conversion first
said to pay nobody and attributed later used to get revision 0 twice."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig
from pipeline.native import available
from pipeline.units import DAY_MS, HOUR_MS
from tests.unit import outputs
from tests.unit.test_native_differential import NOW, T0, configs, logs

pytestmark = pytest.mark.skipif(not available(), reason="the native engine is not built")
ENGINES = ("python", "native")


def facts(rewards: Iterable[outputs.Reward]) -> dict[tuple[str, str], list[int]]:
    """Each conversion's facts in output order, as their revisions; fails where a fact's records disagree on
    the revision or a fact does not come with a higher revision than the one before it."""
    seen: dict[tuple[str, str], list[int]] = {}
    for r in rewards:
        if r["kind"] == "final":
            continue
        key = (r["user_id"], r["conversion_id"])
        revisions = seen.setdefault(key, [])
        if r["position"] in (None, 0):  # a fact starts: an unattributed one, or a split's first record
            assert not revisions or r["revision"] > revisions[-1], (key, revisions, r)
            revisions.append(r["revision"])
        else:
            assert revisions and r["revision"] == revisions[-1], (key, revisions, r)
    return seen


def every_path(lines: list[str], config: EngineConfig, learned: LearnedWeights | None = None,
               batch: int = 1) -> dict[str, list[outputs.Reward]]:
    out = {f"backfill {e}": outputs.as_dicts(outputs.backfill(e, lines, config, NOW, learned)) for e in ENGINES}
    recs = outputs.records(lines)
    for e in ENGINES:
        out[f"partition {e}"] = outputs.partition(e, recs, config, NOW, batch, learned)[0]
    return out


def _line(**event: object) -> str:
    return json.dumps(event)


def _tp(tid: str, hour: float) -> str:
    return _line(type="touchpoint", touchpoint_id=tid, episode_id="e", user_id="u", campaign_id="c",
                 channel="search", timestamp=T0 + int(hour * HOUR_MS))


def _cv(cid: str, hour: float, event: str = "signup", value: str = "10.00", **more: object) -> str:
    return _line(type="conversion", conversion_id=cid, user_id="u", event=event, currency="USD", value=value,
                 timestamp=T0 + int(hour * HOUR_MS), **more)


def test_a_conversion_said_unattributed_then_attributed_then_corrected_counts_up() -> None:
    config = EngineConfig(windows_ms={"signup": DAY_MS}, allowed_lateness_ms=2 * DAY_MS)
    lines = [
        _cv("s", 30),  # nobody in reach: unattributed (unknown_user)
        _tp("t1", 29.5 - 24),  # in reach, outside the signup window: unattributed again, no_touchpoint_in_window
        _tp("t3", 29.8),  # inside the window: attributed after all
        _cv("r", 31, event="refund", value="4.00", refund_of="s"),
        _tp("t2", 29.6),  # late, inside: the conversion and its refund are re-split
    ]
    for path, rewards in every_path(lines, config).items():
        kinds = [(r["kind"], r["conversion_id"], r["revision"]) for r in rewards if r["kind"] != "final"]
        assert kinds == [("unattributed", "s", 0), ("unattributed", "s", 1), ("attribution", "s", 2),
                         ("refund", "r", 0), ("correction", "s", 3), ("correction", "s", 3),
                         ("refund", "r", 1), ("refund", "r", 1)], path
        assert facts(rewards)[("u", "s")] == [0, 1, 2, 3], path


def test_a_refund_of_a_conversion_that_pays_nobody_yet_starts_at_zero() -> None:
    config = EngineConfig(allowed_lateness_ms=DAY_MS)
    lines = [_cv("c", 10, event="purchase"), _cv("r", 11, event="refund", value="5.00", refund_of="c"),
             _tp("t", 9)]
    for path, rewards in every_path(lines, config).items():
        assert [(r["kind"], r["conversion_id"], r["revision"]) for r in rewards if r["kind"] != "final"] == [
            ("unattributed", "c", 0), ("attribution", "c", 1), ("refund", "r", 0)], path


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logs(), st.integers(0, 2**32 - 1))
def test_revisions_increase_per_conversion_on_every_path(setup: tuple[EngineConfig, LearnedWeights | None],
                                                         lines: list[str], seed: int) -> None:
    config, learned = setup
    # lateness of days: conversions said unattributed are often attributed later
    config = dataclasses.replace(config, allowed_lateness_ms=random.Random(seed).choice(
        [config.allowed_lateness_ms, 2 * DAY_MS]))
    paths = every_path(lines, config, learned, batch=random.Random(seed).choice([1, 5, 1000]))
    for rewards in paths.values():
        facts(rewards)
    assert paths["backfill python"] == paths["backfill native"]
    # a step writes each changed journey once, in no promised order between users
    assert _by_user(paths["partition python"]) == _by_user(paths["partition native"])


def _by_user(rewards: list[outputs.Reward]) -> dict[str, list[outputs.Reward]]:
    out: dict[str, list[outputs.Reward]] = {}
    for r in rewards:
        out.setdefault(r["user_id"], []).append(r)
    return out


def test_a_journey_stored_by_the_previous_build_continues_above_its_published_revision() -> None:
    """That build kept −1 for a conversion it had said unattributed at revision 0; the attribution that follows
    is revision 1 all the same, in both engines, from the same stored bytes."""
    from pipeline.engine.journey import Journey, Split
    from pipeline.engine.partition import TOUCHPOINTS, InputRecord, journey_codec
    from pipeline.engine.partition.processor import PartitionProcessor
    from pipeline.events.avro import AvroCodec, reward_from_record
    from pipeline.native import NativePartitionProcessor

    legacy = Split("c", "purchase", T0 + 10 * HOUR_MS, "USD", 1000, 1000, "linear", "linear", -1, (), (), ())
    stored = journey_codec.encode(Journey(splits=[legacy]), [])
    (touch,) = outputs.records([_tp("t", 9)])
    touch = InputRecord(TOUCHPOINTS, 0, b"u", touch.value, touch.ingest_ms)
    config = EngineConfig(allowed_lateness_ms=DAY_MS)
    for engine in ENGINES:
        proc = (PartitionProcessor if engine == "python" else NativePartitionProcessor)(0, config)
        out = proc.process([touch], lambda keys: [stored if k == b"u" else None for k in keys])
        rewards = [reward_from_record(AvroCodec("attributed_reward").decode(r))
                   for key, value in out.writes if key == b"u" and value for r in journey_codec.outbox(value)]
        assert [(str(r.kind), r.revision) for r in rewards] == [("attribution", 1)], engine
