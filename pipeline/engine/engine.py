"""The engine: journeys in a store, an event-time watermark, and a schedule of journeys to expire.

This is the processor half of a Kafka-Streams-style processor/state-store split. The backfill runs it
over a dict; the streaming worker runs the same journey functions over its RocksDB tables. Nothing here
reads the wall clock: the watermark moves only with event time, so replaying a log gives the same output.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.models import build_models
from pipeline.engine.clock import EventClock
from pipeline.engine.config import EngineConfig
from pipeline.engine.journey import (
    Context,
    Journey,
    StepResult,
    apply_conversion,
    apply_touchpoint,
    expire,
    next_deadline,
)
from pipeline.errors import DuplicateEvent, InvalidEvent
from pipeline.events.types import AttributedReward, Event, RewardKind, Touchpoint


class ExpiryIndex(Protocol):
    """Which users have something to expire once the watermark reaches a deadline."""

    def schedule(self, user_id: str, deadline: int) -> None: ...

    def unschedule(self, user_id: str) -> None: ...

    def pop_due(self, watermark: int, limit: int | None) -> list[str]: ...


class HeapExpiryIndex:
    """In-memory schedule: a heap with lazy deletion, one live entry per user, always at the journey's own next
    deadline (so a schedule rebuilt from stored journeys after a restart is the same schedule)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._scheduled: dict[str, int] = {}

    def schedule(self, user_id: str, deadline: int) -> None:
        if self._scheduled.get(user_id) != deadline:
            self._scheduled[user_id] = deadline
            heapq.heappush(self._heap, (deadline, user_id))

    def unschedule(self, user_id: str) -> None:
        self._scheduled.pop(user_id, None)

    def pop_due(self, watermark: int, limit: int | None) -> list[str]:
        heap = self._heap
        if not heap or heap[0][0] > watermark:
            return []  # the common case
        due: list[str] = []
        while heap and heap[0][0] <= watermark and (limit is None or len(due) < limit):
            deadline, user = heapq.heappop(heap)
            if self._scheduled.get(user) == deadline:
                del self._scheduled[user]
                due.append(user)
        return due

    def __len__(self) -> int:
        return len(self._scheduled)


@dataclass
class EngineStats:
    """Counters for /stats, the backfill summary and get_statistics()."""

    touchpoints: int = 0
    conversions: int = 0
    refunds: int = 0
    conversions_attributed: int = 0
    conversions_unattributed: int = 0
    corrections: int = 0
    duplicate_touchpoints: int = 0
    duplicate_conversions: int = 0
    dropped_touchpoints: int = 0
    finals: int = 0
    pending_touchpoints: int = 0
    total_attributed_minor: int = 0
    rewards_emitted: int = 0
    per_model: Counter[str] = field(default_factory=Counter)

    def __add__(self, other: EngineStats) -> EngineStats:
        """Counters of two engines together (partitions of one run)."""
        total = EngineStats(**{f: getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__
                               if f != "per_model"})
        total.per_model = self.per_model + other.per_model
        return total

    def record(self, rewards: list[AttributedReward]) -> None:
        self.rewards_emitted += len(rewards)
        for r in rewards:
            if r.kind is RewardKind.FINAL:
                self.finals += 1
                self.pending_touchpoints -= 1
                continue
            if r.kind is RewardKind.UNATTRIBUTED:
                continue  # counted with the conversion's input (conversions_unattributed)
            first_of_split = r.position == 0  # each split is counted once, at its first touchpoint
            if r.kind is RewardKind.CORRECTION and first_of_split:
                self.corrections += 1
            if r.kind is RewardKind.ATTRIBUTION or (r.kind is RewardKind.REFUND and r.revision == 0):
                # a later revision redistributes the same total, so only first payouts add to it (an attribution
                # is always a conversion's first payout, whatever facts about it came before)
                self.total_attributed_minor += r.amount_minor
                if first_of_split:
                    self.per_model[r.model or "linear"] += 1
                    if r.kind is RewardKind.ATTRIBUTION:
                        self.conversions_attributed += 1


class Refused(NamedTuple):
    """An event of a batch the engine refused (state untouched): its position in the batch, and why."""

    position: int
    error: InvalidEvent


class StepOutput(NamedTuple):
    rewards: list[AttributedReward]
    refused: list[Refused]


Input = tuple[str, Event, int | None]  # (source, event, ingest time in ms or None)

LOG = "log"  # the one input of a file
# A file has no ingest time to judge timestamps by, so its clock moves only once this many events show the
# new time: fewer events with a wrong clock cannot make the valid ones late (see EventClock).
FILE_QUORUM = 16


class AttributionEngine:
    """Drives the pure journey functions over a store, in the event time of its own clock.

    ``sources`` name the inputs whose frontiers make up the clock (one for a file, two in the worker), and
    ``quorum`` how many events an input needs to show before its clock moves (see :class:`EventClock`)."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        learned: LearnedWeights | None = None,
        store: MutableMapping[str, Journey] | None = None,
        expiry: ExpiryIndex | None = None,
        sources: Sequence[str] = (LOG,),
        quorum: int = 1,
    ) -> None:
        self.config = config or EngineConfig()
        self.models = build_models(self.config.half_life_ms, self.config.position_first,
                                   self.config.position_last, learned)
        self.store: MutableMapping[str, Journey] = store if store is not None else {}
        self.expiry: ExpiryIndex = expiry if expiry is not None else HeapExpiryIndex()
        self.stats = EngineStats()
        self.clock = EventClock(sources, self.config.allowed_lateness_ms, quorum)
        self.watermark: int | None = None  # never moves back: what was refused or finalised stays so
        self.swept = 0  # journeys the last expiry sweep changed (finalised touchpoints, forgotten conversions)

    def apply(self, event: Event, ingest_ms: int | None = None) -> list[AttributedReward]:
        """Apply one event to its user's journey (the clock is not moved: see :meth:`observe`). Raises
        InvalidEvent/LateEvent for bad events (state untouched); returns [] for a duplicate (counted).
        ``ingest_ms``: when the event entered the log (the Kafka record timestamp), the reference for
        refusing future timestamps."""
        rewards = self._apply(event, ingest_ms)
        return [] if rewards is None else rewards

    def _apply(self, event: Event, ingest_ms: int | None) -> list[AttributedReward] | None:
        """:meth:`apply`, with None for a duplicate: a duplicate is no news, so it must not move the clock
        either (an at-least-once delivery or a replayed log would otherwise count one event as two votes)."""
        user = event.user_id
        journey = self.store.get(user)
        ctx = Context(self.config, self.models, self.watermark, ingest_ms)
        try:
            if isinstance(event, Touchpoint):
                result = apply_touchpoint(journey, event, ctx)
            else:
                result = apply_conversion(journey, event, ctx)
        except DuplicateEvent as dup:
            if dup.kind == "touchpoint":
                self.stats.duplicate_touchpoints += 1
            else:
                self.stats.duplicate_conversions += 1
            return None
        self._count_input(event, result)
        self._save(user, result.journey)
        self.stats.record(result.rewards)
        return result.rewards

    def _count_input(self, event: Event, result: StepResult) -> None:
        s = self.stats
        if isinstance(event, Touchpoint):
            s.touchpoints += 1
            s.pending_touchpoints += 1
            s.dropped_touchpoints += result.dropped
        elif event.refund_of is not None:
            s.refunds += 1
        else:
            s.conversions += 1
            if result.rewards and result.rewards[0].kind is RewardKind.UNATTRIBUTED:
                s.conversions_unattributed += 1

    def _save(self, user: str, journey: Journey) -> None:
        if journey.is_empty():
            if user in self.store:
                del self.store[user]
            self.expiry.unschedule(user)
            return
        self.store[user] = journey
        deadline = next_deadline(journey, self.config)
        if deadline is not None:
            self.expiry.schedule(user, deadline)
        else:
            self.expiry.unschedule(user)

    def observe(self, source: str, event_time_ms: int, idle: Collection[str] = ()) -> None:
        """An accepted event moves its input's frontier, and the watermark with it."""
        self.clock.observe(source, event_time_ms)
        self._catch_up(idle)

    def _catch_up(self, idle: Collection[str]) -> None:
        wm = self.clock.watermark(idle)
        if wm is not None and (self.watermark is None or wm > self.watermark):
            self.watermark = wm

    def advance(self, idle: Collection[str] = (), limit: int | None = None) -> list[AttributedReward]:
        """Expire what the watermark has passed. ``limit`` bounds the journeys handled in one call, so a
        caller can interleave expiry sweeps with input; call again until it returns []."""
        self._catch_up(idle)
        return self._sweep(limit)

    def _sweep(self, limit: int | None) -> list[AttributedReward]:
        self.swept = 0
        if self.watermark is None:
            return []
        rewards: list[AttributedReward] = []
        for user in self.expiry.pop_due(self.watermark, limit):
            journey = self.store.get(user)
            if journey is None:
                continue
            result = expire(journey, self.watermark, user, self.config)
            rewards.extend(result.rewards)
            self._save(user, result.journey)
            self.swept += 1
        self.stats.record(rewards)
        return rewards

    def step(self, inputs: Iterable[Input], idle: Collection[str] = (), limit: int | None = None) -> StepOutput:
        """A batch: each event applied in order (the watermark moving after each accepted new one), then one
        expiry sweep of at most ``limit`` journeys. Expiring once per batch instead of after every event
        changes no reward: a touchpoint the sweep finalises lies outside every window an accepted event
        can open, and refunds are judged against retention by their own dates."""
        rewards: list[AttributedReward] = []
        refused: list[Refused] = []
        for i, (source, event, ingest_ms) in enumerate(inputs):
            try:
                applied = self._apply(event, ingest_ms)
            except InvalidEvent as exc:
                refused.append(Refused(i, exc))
                continue
            if applied is not None:
                rewards += applied
                self.observe(source, event.timestamp_ms, idle)
        rewards += self.advance(idle, limit)
        return StepOutput(rewards, refused)

    def process(self, event: Event, ingest_ms: int | None = None) -> list[AttributedReward]:
        """apply + observe + expire: the whole step for a single ordered input (the backfill)."""
        rewards = self._apply(event, ingest_ms)
        if rewards is None:
            return []  # a duplicate: nothing changed, the clock included, so nothing falls due
        self.observe(LOG, event.timestamp_ms)  # moves the watermark: no second catch-up before the sweep
        if self.watermark is not None:
            rewards.extend(self._sweep(None))
        return rewards

    def flush(self) -> list[AttributedReward]:
        """End of input: close every window (the backfill's last step)."""
        newest = self.clock.newest() or 0
        self.clock.raise_floor(newest + self.config.max_window_ms + self.config.refund_retention_ms
                               + self.config.allowed_lateness_ms + 2)
        return self.advance()
