"""When an input partition counts as idle, and how far the wall clock may move a silent partition's clock.

An input partition is idle when it has delivered nothing for ``idle_timeout`` *and* the broker said, within the
last few seconds, that there is nothing more to read (its end offset is at or below where this worker is).
Both, because silence alone also describes a partition whose records are still on a broker that is down or
out of reach: such an input must keep holding the watermark back, or the records it still has would arrive
late. The end offsets come from fresh ``ListOffsets`` requests (the timer's), never from the last fetch.

Only silence while the broker answers counts: after a gap in its answers (the broker was down, or out of
reach) the timeout starts again, because producers were cut off too and their records are still on the way.

When an idle input of a partition receives records again, the timeout starts again for the partition's other
inputs too: their producers may be resuming as well, their records just behind. Without it, the first input
back ran the watermark past the others' backlog, which then arrived late (seen replaying a log with pauses).
An input that never went idle (a steady stream of touchpoints beside sparse conversions) changes nothing.

When every input of a partition is idle, its event-time clock may advance from the wall clock, but never
closer to it than ``max_event_delay``: an event that reaches Kafka within that delay of its own time is
never refused because of it (see docs/operations.md, "Finals without new events").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]

TICK_SECONDS = 1.0  # how often a worker asks for end offsets and lets idle partitions' clocks move


@dataclass
class InputState:
    last_offset: int | None = None  # the last record this worker processed
    last_arrival: float = field(default_factory=time.monotonic)
    end_offset: int | None = None  # the broker's end offset, as last asked
    position: int | None = None  # where the consumer reads next, as last asked (before any record arrived)
    checked_at: float = -1e18  # when the broker last answered for this partition (monotonic seconds)
    answering_since: float = -1e18  # start of the broker's current run of answers without a gap


class Idleness:
    def __init__(self, idle_timeout_s: float, max_event_delay_ms: int, *, freshness_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic, wall_ms: Callable[[], int] | None = None) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_event_delay_ms = max_event_delay_ms
        self.freshness_s = freshness_s
        self._monotonic = monotonic
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self.inputs: dict[TopicPartition, InputState] = {}
        self.resumed: dict[int, float] = {}  # partition → when an idle input of it last received records again

    def _state(self, tp: TopicPartition) -> InputState:
        state = self.inputs.get(tp)
        if state is None:
            state = self.inputs[tp] = InputState(last_arrival=self._monotonic())
        return state

    def arrived(self, tp: TopicPartition, offset: int) -> None:
        state = self._state(tp)
        now = self._monotonic()
        if now - state.last_arrival >= self.idle_timeout_s and self.idle(tp):
            self.resumed[tp[1]] = now  # back after counting as idle: the partition's other inputs wait again
        state.last_offset = offset
        state.last_arrival = now

    def broker_says(self, ends: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int | None]) -> None:
        """Fresh end offsets (and read positions) from the broker, for the partitions it answered."""
        now = self._monotonic()
        for tp, end in ends.items():
            state = self._state(tp)
            if now - state.checked_at > self.freshness_s:
                state.answering_since = now
            state.end_offset = end
            state.position = positions.get(tp)
            state.checked_at = now

    def forget(self, tp: TopicPartition) -> None:
        self.inputs.pop(tp, None)

    def _fresh_end(self, state: InputState) -> int | None:
        """The broker's end offset if it said it within the last ``freshness_s``: else records may be waiting
        there that nobody knows of."""
        if state.end_offset is None or self._monotonic() - state.checked_at > self.freshness_s:
            return None
        return state.end_offset

    def caught_up(self, tp: TopicPartition) -> bool:
        state = self._state(tp)
        end = self._fresh_end(state)
        if end is None:
            return False
        if state.last_offset is not None:
            return state.last_offset + 1 >= end
        return state.position is not None and state.position >= end

    def silent_behind(self, tp: TopicPartition, silent_s: float) -> int | None:
        """The broker's fresh end offset of an input that has delivered nothing for ``silent_s`` while the
        broker answered, or None: where the input should have got to (its records may never have come)."""
        state = self.inputs.get(tp)
        if state is None or self._monotonic() - max(state.last_arrival, state.answering_since) < silent_s:
            return None
        return self._fresh_end(state)

    def idle(self, tp: TopicPartition) -> bool:
        state = self._state(tp)
        silent_since = max(state.last_arrival, state.answering_since, self.resumed.get(tp[1], -1e18))
        return self._monotonic() - silent_since >= self.idle_timeout_s and self.caught_up(tp)

    def floor_ms(self) -> int:
        """How far the wall clock lets an all-idle partition's event time advance."""
        return self._wall_ms() - self.max_event_delay_ms
