"""The two inputs of one partition merged in time order: a conversion waits until the touchpoints before it are read.

The touchpoints and conversions topics are fetched independently, so a conversion is often read before the
touchpoints that precede it; processed at once it would be published as ``unattributed`` and attributed later
(a correction every consumer must absorb). Kafka Streams avoids this by timestamp synchronisation across a task's
co-partitioned inputs (``max.task.idle.ms``). Here the same idea, asymmetric because only one order matters:

- touchpoints are never held: one that comes later than a held conversion is not eligible for it (the engine
  credits only touchpoints at or before the conversion's event time), so letting it go first changes nothing;
- a conversion is released once the touchpoints input of its partition has *passed* its timestamp (a touchpoint
  at or after it was read: everything appended before it was read too, a partition being read in order), or the
  touchpoints input is caught up and ``max_idle_ms`` has gone by since the conversion's timestamp (a touchpoint
  produced just before it may still be on its way to the broker), or it has been held ``max_hold_ms`` (an input
  out of reach must not stop conversions for ever).

Timestamps are the records' broker timestamps (the input topics use ``LogAppendTime``: one clock for both
topics, independent of producers' clocks). A record without one is never held. Pure: time and "caught up" are
given by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.engine.partition import TOUCHPOINTS, InputRecord


@dataclass
class PartitionMerge:
    """One partition's held conversions and how far its touchpoints input has been read."""

    max_idle_ms: int
    max_hold_ms: int
    touchpoints_through_ms: int = -1  # the newest broker timestamp read from the touchpoints input
    held: deque[tuple[InputRecord, int]] = field(default_factory=deque)  # (conversion, monotonic ms held since)

    def add(self, records: Iterable[InputRecord], now_ms: int) -> list[InputRecord]:
        """Records read from either input, in the order read; returns those ready now, in merge order: each
        touchpoint at once, after the held conversions its timestamp releases."""
        out: list[InputRecord] = []
        for record in records:
            if record.source == TOUCHPOINTS:
                if record.ingest_ms is not None and record.ingest_ms > self.touchpoints_through_ms:
                    self.touchpoints_through_ms = record.ingest_ms
                    self._release_passed(out)
                out.append(record)
            elif not self.held and (record.ingest_ms is None or record.ingest_ms <= self.touchpoints_through_ms):
                out.append(record)
            else:
                self.held.append((record, now_ms))
        return out

    def _release_passed(self, out: list[InputRecord]) -> None:
        held = self.held
        while held and _ts(held[0][0]) <= self.touchpoints_through_ms:
            out.append(held.popleft()[0])

    def due(self, touchpoints_caught_up: bool, wall_ms: int, now_ms: int) -> list[InputRecord]:
        """Held conversions released by time: the touchpoints input caught up and the idle wait past their
        timestamp, or held too long. In order: a conversion never overtakes one held before it."""
        out: list[InputRecord] = []
        held = self.held
        while held:
            record, since = held[0]
            if (touchpoints_caught_up and _ts(record) + self.max_idle_ms <= wall_ms) \
                    or now_ms - since >= self.max_hold_ms:
                out.append(held.popleft()[0])
            else:
                break
        return out

    def drop(self) -> list[InputRecord]:
        """Everything held (the partition is handed over, or its uncommitted work is undone)."""
        records = [r for r, _ in self.held]
        self.held.clear()
        return records


def _ts(record: InputRecord) -> int:
    return -1 if record.ingest_ms is None else record.ingest_ms
