"""How long the periodic tick takes, for ``/metrics``.

The tick (end offsets for idleness, the wall clock's step for idle partitions) runs on the worker's loop: while it
runs, no record is processed. Its last and longest durations are published so that a tick that grows with the
number of partitions or journeys shows before it stalls the stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class TickTimes:
    count: int = 0
    total_seconds: float = 0.0
    last_seconds: float = 0.0
    max_seconds: float = 0.0
    # the longest stretch of one tick that held the event loop (Faust: the tick awaits the broker and the send,
    # which other work may use; the Kafka runtime's tick holds its loop throughout)
    max_stall_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total_seconds += seconds
        self.last_seconds = seconds
        self.max_seconds = max(self.max_seconds, seconds)

    @contextmanager
    def timed(self, holds_loop: bool = False) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(time.perf_counter() - start)
            if holds_loop:
                self.max_stall_seconds = max(self.max_stall_seconds, self.last_seconds)

    @contextmanager
    def stall(self) -> Iterator[None]:
        """A stretch of the tick without an ``await``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.max_stall_seconds = max(self.max_stall_seconds, time.perf_counter() - start)


TICKS = TickTimes()  # one worker per process
