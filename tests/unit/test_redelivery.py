"""What restore sends again: the outboxes of changelog records past the partition's last delivered mark."""

from __future__ import annotations

from pipeline.engine.partition import RESERVED_PREFIX, journey_codec
from pipeline.stream.redelivery import Redelivery, mark_key, mark_value


def value(*rewards: bytes) -> bytes:
    return journey_codec.encode(None, rewards)


def test_only_records_past_the_latest_mark_are_sent_again_in_log_order() -> None:
    r = Redelivery()
    r.observe(3, 10, b"u1", value(b"a"))
    r.observe(3, 11, b"u2", value(b"b", b"c"))
    r.observe(3, 12, b"u1", value(b"d"))
    r.observe(3, 13, mark_key(3), mark_value(11))  # 10 and 11 reached the rewards topic, 12 may not have
    r.observe(3, 14, b"u3", value(b"e"))
    r.observe(3, 15, b"u4", value())  # a write that paid nobody
    assert r.pending(3) == 2
    assert r.take(3) == ([(b"u1", b"d"), (b"u3", b"e")], 15)
    assert r.take(3) == ([], None) and r.sent == 2


def test_partitions_are_kept_apart_and_other_reserved_keys_and_tombstones_are_ignored() -> None:
    r = Redelivery()
    r.observe(1, 5, b"u1", value(b"x"))
    r.observe(2, 7, b"u9", value(b"y"))
    r.observe(2, 8, mark_key(1), mark_value(100))  # partition 1's mark means nothing in partition 2's log
    r.observe(2, 9, RESERVED_PREFIX + b"meta:2", b"{}")
    r.observe(2, 10, b"u9", None)
    assert r.take(2) == ([(b"u9", b"y")], 10)
    assert r.take(1) == ([(b"u1", b"x")], 5)


def test_without_any_mark_everything_restored_is_sent_again() -> None:
    r = Redelivery()
    for offset in range(5):
        r.observe(0, offset, f"u{offset}".encode(), value(bytes([offset])))
    rewards, through = r.take(0)
    assert [key for key, _ in rewards] == [b"u0", b"u1", b"u2", b"u3", b"u4"] and through == 4
