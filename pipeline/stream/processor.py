"""One input partition's processing: the engine over a byte key-value store, with a watermark taken as
the minimum over both input topics and an expiry schedule swept in bounded slices.

No Faust here: the Faust agents hand each decoded event to :meth:`PartitionProcessor.process` and apply
the returned writes to their table. Tests drive it with a dict.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import AttributionEngine, EngineConfig, HeapExpiryIndex, Journey
from pipeline.engine.journey import next_deadline
from pipeline.events.errors import InvalidEvent
from pipeline.events.types import AttributedReward, Event
from pipeline.stream import journey_codec

TOUCHPOINTS = "touchpoints"
CONVERSIONS = "conversions"
RESERVED_PREFIX = "\x00"  # keys that are not user ids (per-partition metadata)


class ByteStore(Protocol):
    def get(self, key: str) -> bytes | None: ...


Write = tuple[str, bytes | None]  # (key, value); None deletes


class OutboxStore(MutableMapping[str, Journey]):
    """The engine's journey store over a byte store. Writes are held back until :meth:`drain`, which
    encodes each journey with the rewards it produced in this step (its outbox)."""

    def __init__(self, kv: ByteStore) -> None:
        self.kv = kv
        self.dirty: dict[str, Journey | None] = {}

    def __getitem__(self, user: str) -> Journey:
        if user in self.dirty:
            journey = self.dirty[user]
        else:
            raw = self.kv.get(user)
            journey = journey_codec.decode(raw)[0] if raw is not None else None
        if journey is None:
            raise KeyError(user)
        return journey

    def __setitem__(self, user: str, journey: Journey) -> None:
        self.dirty[user] = journey

    def __delitem__(self, user: str) -> None:
        self.dirty[user] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.dirty)  # the engine never iterates; the byte store is the source of truth

    def __len__(self) -> int:
        return len(self.dirty)

    def drain(self, rewards: list[AttributedReward]) -> list[Write]:
        """The step's table writes. A deleted journey with outputs is written once with its outbox (so the
        relay publishes them) and then deleted."""
        outbox: dict[str, list[AttributedReward]] = defaultdict(list)
        for r in rewards:
            outbox[r.user_id].append(r)
        writes: list[Write] = []
        for user in {**self.dirty, **outbox}:
            journey = self.dirty[user] if user in self.dirty else self.get(user)
            out = outbox.get(user, [])
            if journey is None:
                if out:
                    writes.append((user, journey_codec.encode(None, out)))
                writes.append((user, None))
            else:
                writes.append((user, journey_codec.encode(journey, out)))
        self.dirty.clear()
        return writes

    def discard(self) -> None:
        self.dirty.clear()


@dataclass
class InputClock:
    """Event-time frontier of one input topic's partition, when it last delivered (wall clock), and the
    offset of its last record (to ask Kafka whether anything is left to read)."""

    max_ms: int | None = None
    last_arrival: float = field(default_factory=time.monotonic)
    last_offset: int | None = None


class PartitionProcessor:
    """Watermark = min over both inputs' newest event time − allowed lateness (as Flink does with several
    inputs), so reading one topic ahead of the other cannot finalise touchpoints early.

    An input is *idle* when Kafka has nothing more for it (``caught_up(source, last_offset)``) and it has
    delivered nothing for ``idle_timeout_s``; an idle input is left out of the minimum, or a quiet topic
    would stall finality for ever. That is the one place the wall clock enters, and only for an input that
    has nothing left to read, so a replay of a backlog (both inputs lagging) is decided by event time alone."""

    META_EVERY_MS = 3_600_000  # event time between routine saves of the frontier

    def __init__(
        self,
        partition: int,
        kv: ByteStore,
        config: EngineConfig,
        learned: LearnedWeights | None = None,
        *,
        idle_timeout_s: float = 30.0,
        slice_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        caught_up: Callable[[str, int | None], bool] = lambda source, last_offset: True,
    ) -> None:
        self.partition = partition
        self.store = OutboxStore(kv)
        self.engine = AttributionEngine(config, learned, store=self.store, expiry=HeapExpiryIndex())
        self.idle_timeout_s = idle_timeout_s
        self.slice_limit = slice_limit
        self.clock = clock
        self.caught_up = caught_up
        now = clock()
        self.inputs = {TOUCHPOINTS: InputClock(last_arrival=now), CONVERSIONS: InputClock(last_arrival=now)}
        self.meta_key = f"{RESERVED_PREFIX}meta:{partition}"
        self._meta_saved_at: int | None = None

    def restore(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Rebuild the expiry schedule and the event-time frontier from the partition's stored state."""
        n = 0
        for key, value in items:
            if key == self.meta_key:
                meta = orjson.loads(value)
                self.inputs[TOUCHPOINTS].max_ms = meta.get(TOUCHPOINTS)
                self.inputs[CONVERSIONS].max_ms = meta.get(CONVERSIONS)
                self._meta_saved_at = self.watermark()
                continue
            if key.startswith(RESERVED_PREFIX):
                continue
            journey = journey_codec.decode(value)[0]
            if journey is None:
                continue
            deadline = next_deadline(journey, self.engine.config)
            if deadline is not None:
                self.engine.expiry.schedule(key, deadline)
                n += 1
            self.engine.stats.pending_touchpoints += len(journey.touches)
        seen = [c.max_ms for c in self.inputs.values() if c.max_ms is not None]
        self.engine.max_seen_ms = max(seen) if seen else None
        wm = self.watermark()
        if wm is not None:
            self.engine.watermark = wm
        return n

    def idle(self, source: str) -> bool:
        c = self.inputs[source]
        return self.clock() - c.last_arrival > self.idle_timeout_s and self.caught_up(source, c.last_offset)

    def watermark(self) -> int | None:
        live = [c.max_ms for source, c in self.inputs.items() if not self.idle(source)]
        if not live:
            live = [c.max_ms for c in self.inputs.values() if c.max_ms is not None]
        if any(m is None for m in live):
            return None
        return min(m for m in live if m is not None) - self.engine.config.allowed_lateness_ms

    def process(self, source: str, event: Event, offset: int | None = None, ingest_ms: int | None = None
                ) -> tuple[list[AttributedReward], list[Write]]:
        """Apply one event. Raises InvalidEvent (state untouched, nothing to write) for a bad event."""
        self.inputs[source].last_offset = offset
        try:
            rewards = self.engine.apply(event, ingest_ms)
        except InvalidEvent:
            self.store.discard()
            raise
        clock = self.inputs[source]
        clock.last_arrival = self.clock()
        if clock.max_ms is None or event.timestamp_ms > clock.max_ms:
            clock.max_ms = event.timestamp_ms
        if self.engine.max_seen_ms is None or event.timestamp_ms > self.engine.max_seen_ms:
            self.engine.max_seen_ms = event.timestamp_ms
        wm = self.watermark()
        expired = False
        if wm is not None:
            before = len(self.store.dirty)
            swept = self.engine.advance_to(wm, self.slice_limit)
            expired = bool(swept) or len(self.store.dirty) > before
            rewards.extend(swept)
        writes = self.store.drain(rewards)
        if wm is not None and (expired or self._meta_saved_at is None
                               or wm - self._meta_saved_at >= self.META_EVERY_MS):
            # The frontier goes *first*: records of one partition are durable as a prefix, so whenever an
            # expiry (a forgotten touchpoint) survives a crash, a frontier at least this new survives too, and
            # a replay of the forgotten event is refused as late instead of being taken for a new one.
            meta = {TOUCHPOINTS: self.inputs[TOUCHPOINTS].max_ms, CONVERSIONS: self.inputs[CONVERSIONS].max_ms}
            writes.insert(0, (self.meta_key, orjson.dumps(meta)))
            self._meta_saved_at = wm
        return rewards, writes

    def lag_ms(self) -> int | None:
        """Event-time distance between the newest event and the watermark (lateness plus input skew)."""
        wm = self.engine.watermark
        if wm is None or self.engine.max_seen_ms is None:
            return None
        return self.engine.max_seen_ms - wm
