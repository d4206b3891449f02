"""Holes in what Faust delivers: records of an input partition it skipped, which the worker reads itself.

Faust can hand an agent a partition's records with a hole in them around a rebalance: a fetch cut short when
the consumer generation changes drops the rest of its records while the fetch position has moved past them,
and its consumer takes the jump in offsets for a gap it may commit past (the gaps it expects are those of
transaction markers). Seen here as one touchpoint of the rebalance test (twice in about 60 runs) that never
reached its journey and never got its final, while the offsets around it were processed and committed.

So the worker checks every input partition's offsets itself. A partition it takes up should start at its
group's committed offset, and then go on where it left off; a record past that leaves a hole. A hole at the end
of what a partition holds has no record after it: an input that has delivered nothing for a while though the
broker's end offset is past where it stands has one too (seen as the last two records of a demo's first day,
never delivered while the demo waited for them). The records
Kafka holds inside a hole (none, for a transaction marker) are read directly and processed first. Records
before the expected offset are repeats (Faust seeking back, or delivering again what a hole's read already
processed): their effects are in the state already, so they are acknowledged and skipped.

Pure bookkeeping here; the app's adapter reads from Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.engine.partition import InputRecord

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Hole:
    topic: str
    partition: int
    start: int  # the first offset Faust did not deliver
    end: int  # the offset it delivered next (not part of the hole)
    first: bool = False  # before the first record of a partition taken up (start at the committed offset)


class HoleReader(Protocol):
    """What the worker asks Kafka about its inputs (an adapter around confluent-kafka in the app)."""

    async def committed(self, topic: str, partition: int) -> int | None:
        """The offset the worker's group has committed for an input partition."""
        ...

    async def read(self, hole: Hole) -> Sequence[InputRecord]:
        """The records Kafka holds inside the hole, in offset order."""
        ...


class OffsetHoles:
    """The next offset expected of each input partition this worker processes."""

    def __init__(self) -> None:
        self.next: dict[TopicPartition, int] = {}
        self._fresh: set[TopicPartition] = set()  # taken up, nothing delivered yet

    def starts_at(self, tp: TopicPartition, offset: int | None) -> None:
        """A partition just taken up: its first record should be at the committed ``offset``."""
        if offset is not None and tp not in self.next:
            self.next[tp] = offset
            self._fresh.add(tp)

    def repeat(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the record at ``offset`` is one this worker has processed already, or one before the
        committed offset it started from: processed, its effects in the state (a seek back delivers those)."""
        expected = self.next.get(tp)
        return expected is not None and offset < expected

    def delivered(self, tp: TopicPartition, offset: int) -> Hole | None:
        """A record at ``offset`` arrived: the hole it leaves behind it, if any."""
        expected = self.next.get(tp)
        first = tp in self._fresh
        self._fresh.discard(tp)
        if expected is None or offset + 1 > expected:
            self.next[tp] = offset + 1
        if expected is not None and offset > expected:
            return Hole(tp[0], tp[1], expected, offset, first)
        return None

    def tail(self, tp: TopicPartition, end: int) -> Hole | None:
        """The broker's log of the partition ends at ``end`` while nothing past the expected offset came: the
        hole at its tail (no later record shows it). The expectation moves to ``end``: what Faust delivers of it
        later is a repeat."""
        expected = self.next.get(tp)
        if expected is None or end <= expected:
            return None
        first = tp in self._fresh
        self._fresh.discard(tp)
        self.next[tp] = end
        return Hole(tp[0], tp[1], expected, end, first)

    def forget(self, tp: TopicPartition) -> None:
        """The partition moved away: whoever has it next starts from the committed offset."""
        self.next.pop(tp, None)
        self._fresh.discard(tp)
