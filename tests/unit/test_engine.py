"""The journey state machine: corrections, refunds, duplicates, finality, bounded state, bad input."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.errors import InvalidEvent, LateEvent
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.money.exact import RatesTable
from pipeline.units import DAY_MS
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
    (said,) = e.process(conv("c1", 5, "10"))
    assert (said.kind, said.reason, said.conversion_id, said.amount_minor) == ("unattributed", "unknown_user", "c1", 0)
    assert said.conversion_value_minor == 1000 and said.touchpoint_id == ""
    out = e.process(tp("t1", 4.5))
    # the second fact about c1: it must come after the unattributed one for a reader keeping the highest revision
    assert kinds(out) == ["attribution"] and out[0].revision == 1 and out[0].amount_minor == 1000
    assert e.stats.conversions_unattributed == 1


def test_unattributed_conversions_say_why_by_event_time_alone() -> None:
    e = engine(windows_ms={"signup": DAY_MS})
    e.process(tp("t1", 0))
    (said,) = e.process(conv("s1", 48, "10", event="signup"))  # t1 is 2 days old: in the longest window only
    assert (said.kind, said.reason) == ("unattributed", "no_touchpoint_in_window")
    (other,) = e.process(conv("c2", 48, "10", user="u2"))
    assert other.reason == "unknown_user" and other.user_id == "u2"
    e.process(conv("c0", 49, "10"))  # keeps u1's journey alive once t1 is final
    out = e.process(conv("c1", 24 * 8, "10"))  # t1 is 8 days old now, and final: unknown as far as it can tell
    (late,) = [r for r in out if r.conversion_id == "c1"]
    assert late.reason == "unknown_user"
    assert said.reward_id != other.reward_id


def test_an_earlier_touchpoint_arriving_late_revises_the_reason() -> None:
    e = engine(windows_ms={"signup": DAY_MS}, allowed_lateness_ms=2 * DAY_MS)
    (first,) = e.process(conv("s", 30, "10", event="signup"))
    assert (first.reason, first.revision) == ("unknown_user", 0)
    (again,) = e.process(tp("t1", 29.5 - 24))  # late, in reach, outside the signup window
    assert (again.kind, again.reason, again.revision) == ("unattributed", "no_touchpoint_in_window", 1)
    assert e.process(tp("t2", 29.2 - 24)) == []  # the reason stands: nothing more to say
    out = e.process(tp("t3", 29.8))  # inside the window: attributed after all, the third fact about s
    assert [(r.kind, r.revision) for r in out] == [("attribution", 2)]


def test_reward_ids_are_scoped_by_user_and_cannot_run_together() -> None:
    e = engine()
    a = e.process(tp("t", 0, user="u:1")) + e.process(conv("c", 1, "10", user="u:1"))
    b = e.process(tp("1:t", 0, user="u")) + e.process(conv("c", 1, "10", user="u"))
    assert a[0].reward_id != b[0].reward_id
    assert a[0].reward_id == "attribution:u%3A1:c:t:0"


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


def test_future_timestamps_are_judged_against_when_the_event_entered_the_log() -> None:
    e = engine(max_future_skew_ms=15 * 60_000)
    e.process(tp("t1", 0), ingest_ms=T0)
    with pytest.raises(InvalidEvent, match="future"):
        e.process(tp("t2", 1), ingest_ms=T0)  # an hour ahead of its ingest time
    e.process(tp("t3", 24 * 30), ingest_ms=T0 + 24 * 30 * 3_600_000)  # a month later, and it is a month later
    assert e.clock.newest() == T0 + 24 * 30 * 3_600_000


def test_a_few_events_with_a_wrong_clock_do_not_make_the_rest_late() -> None:
    from pipeline.engine import FILE_QUORUM

    e = AttributionEngine(EngineConfig(), quorum=FILE_QUORUM)
    out = []
    for i in range(5):  # five events a week ahead, as from a producer with a wrong clock
        out += e.process(tp(f"bad{i}", 167 + i * 0.01, user=f"b{i}"))
    for i in range(200):  # then the valid log, an hour at a time
        out += e.process(tp(f"t{i}", i * 0.1, user=f"u{i % 7}"))
        if i % 10 == 9:
            out += e.process(conv(f"c{i}", i * 0.1 + 0.05, "10", user=f"u{i % 7}"))
    assert e.stats.touchpoints == 205 and e.stats.conversions == 20
    assert e.stats.conversions_attributed == 20


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
    e.clock.raise_floor(T0 + 8 * DAY_MS)
    total = []
    while batch := e.advance(limit=7):
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
