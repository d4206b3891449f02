"""Event time over one or more inputs: each input's frontier, and the watermark they allow.

The watermark is how far event time has certainly advanced, minus the allowed lateness: an event older than it
is refused, a touchpoint whose window ends before it is final. With several inputs (the worker reads touchpoints
and conversions from two topics) it is the minimum over the inputs, as Flink does, so one input read ahead of
the other finalises nothing early. An input the caller reports *idle* (nothing left to read, silent for a
while) is left out of the minimum, or a quiet topic would hold finality back for ever; when all are idle, the
furthest input's frontier counts.

Two refinements keep a handful of wrong clocks from costing valid events:

- ``quorum``: an input's frontier is the ``quorum``-th newest event time it has shown. With 1 it is the newest;
  a file, which has no ingest time to judge a timestamp by, uses more, so that fewer than ``quorum`` events
  dated far ahead cannot move its clock.
- ``floor``: the caller may raise the clock from outside (the worker does so from the wall clock when every
  input of a partition is idle, bounded by the maximum event delay), so finals fall due without new events.

Pure: the caller decides what is idle and what the floor is; nothing here reads a clock.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Collection, Mapping, Sequence
from typing import Any


class EventClock:
    __slots__ = ("_newest", "_recent", "floor", "lateness_ms", "quorum", "sources")

    def __init__(self, sources: Sequence[str], lateness_ms: int, quorum: int = 1) -> None:
        if quorum < 1:
            raise ValueError(f"quorum must be at least 1, got {quorum}")
        self.sources = tuple(sources)
        self.lateness_ms = lateness_ms
        self.quorum = quorum
        self._recent: dict[str, list[int]] = {s: [] for s in self.sources}  # ascending, at most `quorum` long
        self._newest: dict[str, int | None] = dict.fromkeys(self.sources)
        self.floor: int | None = None

    def observe(self, source: str, time_ms: int) -> None:
        """An accepted event of ``source`` at ``time_ms``."""
        newest = self._newest[source]
        if newest is None or time_ms > newest:
            self._newest[source] = time_ms
        recent = self._recent[source]
        if self.quorum == 1:
            if not recent:
                recent.append(time_ms)
            elif time_ms > recent[0]:
                recent[0] = time_ms
            return
        if len(recent) >= self.quorum:
            if time_ms <= recent[0]:
                return
            del recent[0]  # the oldest of the newest leaves; time_ms goes in its place in order
        insort(recent, time_ms)

    def frontier(self, source: str) -> int | None:
        """The input's clock: its ``quorum``-th newest event time, None until it has shown that many."""
        recent = self._recent[source]
        return recent[0] if len(recent) >= self.quorum else None

    def newest(self) -> int | None:
        """The newest event time of any input (what the worker reports its lag against)."""
        seen = [t for t in self._newest.values() if t is not None]
        return max(seen) if seen else None

    def raise_floor(self, time_ms: int) -> bool:
        """Let the clock stand at least at ``time_ms`` whatever the inputs say; True if that moved it."""
        if self.floor is None or time_ms > self.floor:
            self.floor = time_ms
            return True
        return False

    def time(self, idle: Collection[str] = ()) -> int | None:
        """Event time certainly reached: the minimum over the live inputs' frontiers, raised to the floor. When
        every input is idle none holds the others back, and the furthest one's frontier counts. None while a
        live input has not spoken and there is no floor."""
        if len(self.sources) == 1 and not idle:  # a file: one input, never idle
            recent = self._recent[self.sources[0]]
            reached_one = recent[0] if len(recent) >= self.quorum else None
            if self.floor is not None and (reached_one is None or self.floor > reached_one):
                return self.floor
            return reached_one
        live = [self.frontier(s) for s in self.sources if s not in idle]
        reached: int | None = None
        if not live:
            known = [f for f in (self.frontier(s) for s in self.sources) if f is not None]
            reached = max(known) if known else None
        elif all(f is not None for f in live):
            reached = min(f for f in live if f is not None)
        if self.floor is not None and (reached is None or self.floor > reached):
            return self.floor
        return reached

    def watermark(self, idle: Collection[str] = ()) -> int | None:
        reached = self.time(idle)
        return None if reached is None else reached - self.lateness_ms

    # ------------------------------------------------------------------ persistence (the worker's frontier)

    def state(self) -> dict[str, Any]:
        return {"recent": {s: list(v) for s, v in self._recent.items()}, "newest": dict(self._newest),
                "floor": self.floor}

    def load(self, state: Mapping[str, Any]) -> None:
        for source in self.sources:
            self._recent[source] = sorted(state.get("recent", {}).get(source, []))[-self.quorum:]
            self._newest[source] = state.get("newest", {}).get(source)
        self.floor = state.get("floor")
