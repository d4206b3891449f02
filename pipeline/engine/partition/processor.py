"""One input partition's processing, as a pure step: a batch of raw records in, table writes out.

No Faust and no Kafka client here. A runtime hands :meth:`PartitionProcessor.process` the partition's records
of one batch (from both input topics, in arrival order), a way to load stored journeys, and what it knows from
outside: which inputs are idle and how far the wall clock lets event time advance. It gets back the writes
for the journeys table, each changed journey once, carrying the rewards its change produced (its outbox), the
same rewards as (user key, record) pairs in emitted order, and the records it refused. Tests drive it with a
dict.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, MutableMapping, Sequence

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import AttributionEngine, EngineConfig, EngineStats, HeapExpiryIndex, Journey
from pipeline.engine.journey import next_deadline
from pipeline.engine.partition import journey_codec
from pipeline.engine.partition.records import (
    RESERVED_PREFIX,
    SOURCES,
    BatchOutput,
    InputRecord,
    Loader,
    Refusal,
    Write,
    decode_record,
    meta_key,
)
from pipeline.errors import InvalidEvent
from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.types import Event


class _BatchStore(MutableMapping[str, Journey]):
    """The engine's journey store for one step: journeys loaded from the table (once), changes kept until
    the step's writes are made."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self.loaded: dict[str, Journey | None] = {}
        self.dirty: set[str] = set()

    def preload(self, users: Iterable[str]) -> None:
        missing = [u for u in dict.fromkeys(users) if u not in self.loaded]
        if missing:
            for user, raw in zip(missing, self._load([u.encode() for u in missing]), strict=True):
                self.loaded[user] = journey_codec.decode_journey(raw) if raw is not None else None

    def __getitem__(self, user: str) -> Journey:
        if user not in self.loaded:
            self.preload((user,))
        journey = self.loaded[user]
        if journey is None:
            raise KeyError(user)
        return journey

    def __setitem__(self, user: str, journey: Journey) -> None:
        self.loaded[user] = journey
        self.dirty.add(user)

    def __delitem__(self, user: str) -> None:
        self.loaded[user] = None
        self.dirty.add(user)

    def __contains__(self, user: object) -> bool:
        return isinstance(user, str) and self.get(user) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(u for u, j in self.loaded.items() if j is not None)

    def __len__(self) -> int:
        return sum(j is not None for j in self.loaded.values())


class PartitionProcessor:
    """The engine over one partition's journeys, with a clock over both input topics (see EventClock).

    State kept here between steps is small: the clock and the expiry schedule (rebuilt from the table by
    :meth:`restore`). Journeys live in the table, so the worker's memory does not grow with open journeys."""

    def __init__(self, partition: int, config: EngineConfig, learned: LearnedWeights | None = None, *,
                 slice_limit: int = 1000, outbox: bool = True) -> None:
        """Each step returns its rewards in ``BatchOutput.reward_records``. With ``outbox`` the journey writes
        carry them too (the changelog's copy, for redelivery at restore); without, journey writes carry no
        rewards, for a runtime that publishes them atomically with the writes."""
        self.partition = partition
        self.slice_limit = slice_limit
        self.outbox = outbox
        self.engine = AttributionEngine(config, learned, store={}, expiry=HeapExpiryIndex(), sources=SOURCES)
        self.meta_key = meta_key(partition)
        self._meta_saved: bytes | None = None  # the clock as last written
        self._rewards = AvroCodec("attributed_reward")

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    def restore(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Rebuild the expiry schedule and the clock from the partition's stored state; returns the number
        of journeys with a pending deadline."""
        n = 0
        for key, value in items:
            if key == self.meta_key:
                meta = orjson.loads(value)
                self.engine.clock.load(meta)
                # the watermark never moves back, and may stand above what the clock alone gives (it rose while
                # an input was idle): it is restored as it was, or a restarted worker would take what it refused
                self.engine.watermark = meta.get("watermark", self.engine.clock.watermark())
                self._meta_saved = self._meta()
                continue
            if key.startswith(RESERVED_PREFIX):
                continue
            journey = journey_codec.decode_journey(value)
            if journey is None:
                continue
            deadline = next_deadline(journey, self.engine.config)
            if deadline is not None:
                self.engine.expiry.schedule(key.decode(), deadline)
                n += 1
            self.engine.stats.pending_touchpoints += len(journey.touches)
        return n

    def newest_ms(self) -> int | None:
        """The newest event time either input has shown (what dead letters and the wall clock go by)."""
        return self.engine.clock.newest()

    def event_times(self, records: Sequence[InputRecord]) -> list[int | None]:
        out: list[int | None] = []
        for record in records:
            try:
                out.append(decode_record(record).timestamp_ms)
            except InvalidEvent:
                out.append(None)
        return out

    def process(self, records: Sequence[InputRecord], load: Loader, idle: Collection[str] = (),
                floor_ms: int | None = None) -> BatchOutput:
        """One step over a batch of this partition's records, in arrival order."""
        out = BatchOutput()
        inputs: list[tuple[str, Event, int | None]] = []
        accepted: list[InputRecord] = []
        for record in records:
            try:
                inputs.append((record.source, decode_record(record), record.ingest_ms))
                accepted.append(record)
            except InvalidEvent as exc:
                out.refused.append(Refusal(record, exc))
        return self._step(inputs, accepted, load, idle, floor_ms, out)

    def advance(self, load: Loader, idle: Collection[str] = (), floor_ms: int | None = None) -> BatchOutput:
        """A step without input (the worker's timer): what the idle inputs and the wall clock let expire."""
        return self._step([], [], load, idle, floor_ms, BatchOutput())

    def _step(self, inputs: list[tuple[str, Event, int | None]], records: list[InputRecord], load: Loader,
              idle: Collection[str], floor_ms: int | None, out: BatchOutput) -> BatchOutput:
        engine = self.engine
        store = _BatchStore(load)
        store.preload(event.user_id for _, event, _ in inputs)
        engine.store = store
        if floor_ms is not None:
            engine.clock.raise_floor(floor_ms)
        step = engine.step(inputs, idle, self.slice_limit)
        out.refused += [Refusal(records[r.position], r.error) for r in step.refused]
        encode = self._rewards.encode
        emitted = [(r.user_id, encode(reward_to_record(r))) for r in step.rewards]  # each encoded once
        out.reward_records = [(user.encode(), record) for user, record in emitted]
        out.writes = self._writes(store, emitted if self.outbox else [])
        meta = self._meta()
        if meta != self._meta_saved:
            # The clock is written whenever it moved, so a restart resumes it exactly as it stood after the last
            # durable step. It goes *first*: records of one partition are durable as a prefix, so whenever an
            # expiry (a forgotten touchpoint) survives a crash, the clock that caused it survives too, and a
            # replay of the forgotten event is refused as late instead of being taken for a new one.
            out.writes.insert(0, (self.meta_key, meta))
            self._meta_saved = meta
        engine.store = {}
        return out

    def _meta(self) -> bytes:
        """The partition's clock and watermark, as the frontier record stores them."""
        return orjson.dumps({**self.engine.clock.state(), "watermark": self.engine.watermark})

    def _writes(self, store: _BatchStore, rewards: list[tuple[str, bytes]]) -> list[Write]:
        """Each changed journey once, with the rewards it produced (``rewards``: (user id, record) in emitted
        order; none when the journeys keep no outbox). A deleted journey with outputs is written once with its
        outbox (so they are sent, and found again at restore) and then deleted."""
        outbox: dict[str, list[bytes]] = {}
        for user, record in rewards:
            outbox.setdefault(user, []).append(record)
        writes: list[Write] = []
        for user in {**dict.fromkeys(store.dirty), **outbox}:
            journey = store.loaded.get(user)
            key = user.encode()
            records = outbox.get(user, [])
            if journey is None:
                if records:
                    writes.append((key, journey_codec.encode(None, records)))
                writes.append((key, None))
            else:
                writes.append((key, journey_codec.encode(journey, records)))
        return writes

    def lag_ms(self) -> int | None:
        """Event-time distance between the newest event and the watermark (lateness plus input skew)."""
        wm = self.engine.watermark
        newest = self.engine.clock.newest()
        if wm is None or newest is None:
            return None
        return max(0, newest - wm)
