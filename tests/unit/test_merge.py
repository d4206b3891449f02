"""The Kafka runtime's merge of a partition's two inputs: a conversion waits for the touchpoints before it."""

from __future__ import annotations

from pipeline.engine.partition import CONVERSIONS, TOUCHPOINTS, InputRecord
from pipeline.runtime.merge import PartitionMerge


def tp(offset: int, ts: int | None) -> InputRecord:
    return InputRecord(TOUCHPOINTS, offset, b"u", b"t", ts)


def cv(offset: int, ts: int | None) -> InputRecord:
    return InputRecord(CONVERSIONS, offset, b"u", b"c", ts)


def add(m: PartitionMerge, records: list[InputRecord], now_ms: int) -> list[InputRecord]:
    """Records whose event time is their broker time (in these tests)."""
    return m.add(records, [r.ingest_ms for r in records], now_ms)


def test_event_time_orders_the_inputs_not_the_broker_time() -> None:
    m = merge()
    late_append = InputRecord(TOUCHPOINTS, 0, b"u", b"t", 2000)  # appended after the conversion, happened before
    assert m.add([InputRecord(CONVERSIONS, 0, b"u", b"c", 1990)], [1500], now_ms=0) == []
    assert m.add([late_append], [1400], now_ms=1) == [late_append]  # still before the conversion's event time
    assert m.add([tp(1, 2001)], [1600], now_ms=2) == [InputRecord(CONVERSIONS, 0, b"u", b"c", 1990), tp(1, 2001)]


def merge() -> PartitionMerge:
    return PartitionMerge(max_idle_ms=50, max_hold_ms=30_000)


def test_a_conversion_read_before_its_touchpoints_waits_for_them() -> None:
    m = merge()
    assert add(m, [cv(0, 1000)], now_ms=0) == []
    assert m.commit_offset(CONVERSIONS, default=7) == 0  # a held conversion is not done: it is read again
    # touchpoints up to the conversion's time come first, then the conversion, then later touchpoints
    assert add(m, [tp(0, 900), tp(1, 1000), tp(2, 1100)], now_ms=5) == [tp(0, 900), tp(1, 1000), cv(0, 1000),
                                                                       tp(2, 1100)]
    assert not m.held and m.commit_offset(CONVERSIONS, default=7) == 7


def test_touchpoints_are_never_held_and_a_passed_conversion_goes_at_once() -> None:
    m = merge()
    assert add(m, [tp(0, 2000)], now_ms=0) == [tp(0, 2000)]
    assert add(m, [cv(0, 1500), cv(1, 2000)], now_ms=0) == [cv(0, 1500), cv(1, 2000)]
    assert add(m, [cv(2, 2001)], now_ms=0) == []


def test_conversions_keep_their_order() -> None:
    m = merge()
    assert add(m, [cv(0, 3000), cv(1, 1000)], now_ms=0) == []
    # the touchpoints pass the second conversion's time but not the first's: neither overtakes the first
    assert add(m, [tp(0, 1500)], now_ms=1) == [tp(0, 1500)]
    # a touchpoint of the conversion's millisecond goes first (it may be eligible)
    assert add(m, [tp(1, 3000)], now_ms=2) == [tp(1, 3000), cv(0, 3000), cv(1, 1000)]


def test_caught_up_touchpoints_release_a_conversion_after_the_idle_wait() -> None:
    m = merge()
    add(m, [cv(0, 10_000)], now_ms=0)
    assert m.due(touchpoints_caught_up=True, wall_ms=10_049, now_ms=1) == []  # a touchpoint may be on its way
    assert m.due(touchpoints_caught_up=False, wall_ms=10_050, now_ms=2) == []  # more to read: it may be there
    assert m.due(touchpoints_caught_up=True, wall_ms=10_050, now_ms=3) == [cv(0, 10_000)]


def test_a_conversion_is_held_no_longer_than_the_hold_limit() -> None:
    m = merge()
    add(m, [cv(0, 10**13)], now_ms=100)  # a clock far ahead: the touchpoints never pass it
    assert m.due(touchpoints_caught_up=False, wall_ms=0, now_ms=30_099) == []
    assert m.due(touchpoints_caught_up=False, wall_ms=0, now_ms=30_100) == [cv(0, 10**13)]


def test_records_without_a_timestamp_are_never_held_and_drop_empties_the_partition() -> None:
    m = merge()
    assert add(m, [cv(0, None)], now_ms=0) == [cv(0, None)]
    add(m, [cv(1, 5)], now_ms=0)
    assert m.drop() == [cv(1, 5)] and not m.held


def test_after_a_drop_a_conversion_read_again_waits_for_the_touchpoints_read_again() -> None:
    """An undo reads both inputs again from the committed offsets: the touchpoints read before it no longer
    count, or the conversion would be released ahead of the touchpoints that precede it."""
    m = merge()
    add(m, [tp(0, 900), tp(1, 1000), tp(2, 1100)], now_ms=0)
    m.drop()
    assert add(m, [cv(0, 1000)], now_ms=1) == []
    assert add(m, [tp(0, 900), tp(1, 1000)], now_ms=2) == [tp(0, 900), tp(1, 1000), cv(0, 1000)]
