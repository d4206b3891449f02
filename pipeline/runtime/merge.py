"""The two inputs of one partition merged in event-time order: a conversion waits for the touchpoints before it.

The touchpoints and conversions topics are fetched independently, so a conversion is often read before the
touchpoints that precede it; processed at once it would be published as ``unattributed`` and attributed later
(a correction every consumer must absorb). Kafka Streams avoids this by timestamp synchronisation across a task's
co-partitioned inputs (``max.task.idle.ms``). Here the same idea, on the events' own times, and asymmetric
because only one order matters:

- touchpoints are never held: one that comes later than a held conversion is not eligible for it (the engine
  credits only touchpoints at or before the conversion's event time), so letting it go first changes nothing;
- a conversion is released once the touchpoints input of its partition has *passed* its event time (a
  touchpoint at or after it was read: a producer that publishes in time order has then published, and this
  partition has delivered, every touchpoint before it; one of the same millisecond goes first, as it may be
  eligible), or the touchpoints input is caught up and ``max_idle_ms`` has gone by since the conversion reached
  the broker (a touchpoint published just before it may still be on its way), or it has been held
  ``max_hold_ms`` (an input out of reach must not stop conversions for ever).

Event times are read from the records by the partition's engine (``event_times``); the broker timestamps of the
input topics (``LogAppendTime``) say when a record arrived. Broker timestamps alone do not order the two topics:
a producer sends each partition's batch on its own, so a conversion is often appended before a touchpoint
published a millisecond earlier. A record whose event time the engine could not read is never held. Pure: time
and "caught up" are given by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline.engine.partition import TOUCHPOINTS, InputRecord

NOTHING_READ = -(2**62)  # the touchpoints input's event time before any record of it is read


class Held(NamedTuple):
    record: InputRecord
    event_ms: int
    since_ms: int  # monotonic, when it was read


@dataclass
class PartitionMerge:
    """One partition's held conversions and how far its touchpoints input has been read, in event time."""

    max_idle_ms: int
    max_hold_ms: int
    touchpoints_through_ms: int = NOTHING_READ  # the newest event time read from the touchpoints input
    held: deque[Held] = field(default_factory=deque)

    def add(self, records: Sequence[InputRecord], event_ms: Sequence[int | None], now_ms: int) -> list[InputRecord]:
        """Records read from either input, in the order read, with their event times; returns those ready now,
        in merge order: each touchpoint at once, after the held conversions its time releases."""
        out: list[InputRecord] = []
        for record, ts in zip(records, event_ms, strict=True):
            if record.source == TOUCHPOINTS:
                if ts is not None and ts > self.touchpoints_through_ms:
                    self._release(out, before=ts)  # conversions of the same millisecond come after it
                    out.append(record)
                    self.touchpoints_through_ms = ts
                    self._release(out, before=ts + 1)
                else:
                    out.append(record)
            elif not self.held and (ts is None or ts <= self.touchpoints_through_ms):
                out.append(record)
            else:
                self.held.append(Held(record, self.touchpoints_through_ms + 1 if ts is None else ts, now_ms))
        return out

    def _release(self, out: list[InputRecord], before: int) -> None:
        held = self.held
        while held and held[0].event_ms < before:
            out.append(held.popleft().record)

    def due(self, touchpoints_caught_up: bool, wall_ms: int, now_ms: int) -> list[InputRecord]:
        """Held conversions released by time: the touchpoints input caught up and the idle wait past their
        arrival at the broker, or held too long. In order: a conversion never overtakes one held before it."""
        out: list[InputRecord] = []
        held = self.held
        while held:
            record, _, since = held[0]
            arrived = record.ingest_ms if record.ingest_ms is not None else wall_ms
            if (touchpoints_caught_up and arrived + self.max_idle_ms <= wall_ms) or now_ms - since >= self.max_hold_ms:
                out.append(held.popleft().record)
            else:
                break
        return out

    def commit_offset(self, source: str, default: int) -> int:
        """Where ``source`` is done: a held conversion is not (a crash must read it again); else ``default``, the
        offset after the last record read."""
        if source != TOUCHPOINTS and self.held:
            return self.held[0].record.offset
        return default

    def drop(self) -> list[InputRecord]:
        """Everything held, and how far the touchpoints input was read (the partition is handed over, or its
        uncommitted work is undone and read again from the committed offsets: a conversion read again must wait
        for the touchpoints read again, not be released by the ones read before the undo)."""
        records = [h.record for h in self.held]
        self.held.clear()
        self.touchpoints_through_ms = NOTHING_READ
        return records
