"""The path of one batch, from Faust's take buffer to output Kafka has acknowledged.

1. The agent hands over a batch of input records (both topics, several partitions, arrival order).
2. Per partition, the pure :class:`PartitionProcessor` turns them into table writes: each changed journey once,
   carrying the rewards its change produced (its outbox), the partition's frontier first when it moved.
3. The writes go to the journeys changelog, their rewards to the rewards topic and the refusals to the
   dead-letter topic, through confluent-kafka. The next batch is processed meanwhile: it reads what earlier
   batches wrote from an overlay of writes not yet applied locally, so waiting for Kafka costs no processing
   time.
4. A committer task takes the batches in order: once Kafka has acknowledged a batch's records it applies the
   writes to the local RocksDB (with the changelog offset they reached), and only then acknowledges the
   batch's inputs to Faust, which commits their offsets.

A crash anywhere leaves the changelog at or ahead of the local state, and the inputs unacknowledged at or
behind the changelog; restoring from the changelog and replaying the inputs repeats no reward (a replayed event
is a duplicate, or late, against the restored journey). Rewards a crash kept from the rewards topic are still
in the changelog (each journey write carries its outbox): ``redelivery`` finds them at restore, past the
partition's last *delivered mark*, and the worker sends them first, so none is lost.

The timer (:meth:`StreamWorker.tick`) runs the same path without input records: inputs that are caught up and
silent stop holding the watermark back, and a partition whose inputs are all idle moves its clock from the
wall clock (see ``idleness``), so due finals go out without new events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig
from pipeline.engine.partition import (
    CONVERSIONS,
    SOURCES,
    TOUCHPOINTS,
    BatchOutput,
    InputRecord,
    Loader,
    PartitionEngine,
    Write,
)
from pipeline.engine.partition.journey_codec import Reward
from pipeline.errors import StateNotWritten
from pipeline.kafka.framed_inputs import framed
from pipeline.kafka.schema_registry import wire_format
from pipeline.native.choice import partition_engine
from pipeline.settings import Settings
from pipeline.shell.dead_letters import dead_letter
from pipeline.shell.idleness import Idleness
from pipeline.shell.stats import WorkerCounters, retire, stats_json
from pipeline.shell.tick_timing import TICKS
from pipeline.stream.local_state import JourneyTable
from pipeline.stream.offset_holes import Hole, HoleReader, OffsetHoles
from pipeline.stream.output import OutputProducer, Pending
from pipeline.stream.redelivery import Redelivery, mark_key, mark_value

log = logging.getLogger("rewardstream.worker")

# an input behind the broker's end offset that has delivered nothing this long has a hole at its tail
TAIL_SILENCE_S = 10.0


@dataclass
class _InFlight:
    """A batch whose records Kafka has not acknowledged yet."""

    seq: int
    changelog: list[tuple[int, list[Write]]]
    deliveries: tuple[Pending, Pending, Pending]  # changelog, rewards, dead letters
    dead_letters: int
    acknowledge: Callable[[], None]
    events: int
    resent_through: dict[int, int]  # partition → changelog offset delivered once the batch's resent rewards are


class StreamWorker:
    """Partition processors of the partitions this worker owns, and the path every batch takes."""

    def __init__(self, settings: Settings, config: EngineConfig, learned: LearnedWeights | None,
                 table: JourneyTable, output: OutputProducer, idleness: Idleness, redelivery: Redelivery,
                 on_failure: Callable[[str], None], hole_reader: HoleReader, max_in_flight: int = 8) -> None:
        self.settings = settings
        self.config = config
        self.learned = learned
        self.table = table
        self.output = output
        self.idleness = idleness
        self.redelivery = redelivery
        self.on_failure = on_failure
        self.hole_reader = hole_reader
        self.wire = wire_format(settings)  # the topics' framing: inputs reframed for the engine, outputs back
        self.holes = OffsetHoles()
        self.topic_of = {TOUCHPOINTS: settings.topic_touchpoints, CONVERSIONS: settings.topic_conversions}
        self.processors: dict[int, PartitionEngine] = {}
        self.counters = WorkerCounters()
        self.lock = asyncio.Lock()  # batches and timer steps take turns: one step at a time per partition
        self._unapplied: dict[int, dict[bytes, tuple[int, bytes | None]]] = {}  # partition → key → (seq, value)
        self._in_flight: asyncio.Queue[_InFlight] = asyncio.Queue(max_in_flight)
        self._seq = 0
        self._committer: asyncio.Task[None] | None = None
        self._resend: list[Reward] = []  # rewards restore found past a delivered mark, sent with the next step
        self._resend_through: dict[int, int] = {}  # partition → the changelog offset restore reached
        self._delivered: dict[int, int] = {}  # partition → changelog offset through which rewards are delivered
        self._marked: dict[int, int] = {}  # partition → the delivered offset last written as its mark

    # ------------------------------------------------------------------ partitions

    def processor(self, partition: int) -> PartitionEngine:
        proc = self.processors.get(partition)
        if proc is None:
            proc = framed(partition_engine(self.settings.engine, partition, self.config, self.learned,
                                           self.settings.expiry_slice), self.wire)
            scheduled = proc.restore(self.table.items(partition))
            rewards, through = self.redelivery.take(partition)
            log.info("partition %d taken up: %d journeys with a deadline, clock at %s, %d rewards to resend",
                     partition, scheduled, proc.newest_ms(), len(rewards))
            self._resend += rewards
            if through is not None:
                self._resend_through[partition] = through
            self.processors[partition] = proc
        return proc

    async def retire(self, partitions: Iterable[int]) -> None:
        """Partitions taken away by a rebalance: what is in flight is finished first, their counters are kept,
        their state is the new owner's."""
        partitions = set(partitions)
        for partition in partitions:
            self.table.forget(partition)
        async with self.lock:
            await self.drain()
            # the next owner restores up to here: mark what was delivered, so it sends nothing again
            marks = [(p, BatchOutput()) for p in partitions if p in self.processors and self._needs_mark(p)]
            if marks:
                await self._send(marks, lambda: None, 0)
                await self.drain()
            log.info("partitions %s handed over", sorted(partitions & set(self.processors)))
            for p in partitions:
                self._delivered.pop(p, None)
                self._marked.pop(p, None)
                proc = self.processors.pop(p, None)
                if proc is not None:
                    retire(self.counters, proc.stats)
                self._unapplied.pop(p, None)
                for topic in self.topic_of.values():
                    self.idleness.forget((topic, p))
                    self.holes.forget((topic, p))

    def _idle(self, partition: int) -> list[str]:
        return [s for s in SOURCES if self.idleness.idle((self.topic_of[s], partition))]

    def _loader(self, partition: int) -> Loader:
        """Stored journeys as the next step must see them: writes still in flight first, then RocksDB."""
        load = self.table.loader(partition)
        pending = self._unapplied.get(partition)
        if not pending:
            return load

        def with_pending(keys: list[bytes]) -> list[bytes | None]:
            missing = [k for k in keys if k not in pending]
            stored = dict(zip(missing, load(missing), strict=True)) if missing else {}
            return [pending[k][1] if k in pending else stored[k] for k in keys]

        return with_pending

    # ------------------------------------------------------------------ the two steps

    async def submit(self, records: Sequence[tuple[int, InputRecord]], acknowledge: Callable[[], None]) -> None:
        """One batch of input records (partition, record), in arrival order. ``acknowledge`` is called once the
        batch's output is durable; this returns as soon as it is sent (or when too much is in flight)."""
        by_partition: dict[int, list[InputRecord]] = {}
        for partition, record in records:
            by_partition.setdefault(partition, []).append(record)
        async with self.lock:
            outputs = []
            for partition, batch in by_partition.items():
                batch = await self._fill_holes(partition, batch)
                for record in batch:
                    self.idleness.arrived((self.topic_of[record.source], partition), record.offset)
                proc = self.processor(partition)
                outputs.append((partition, proc.process(batch, self._loader(partition), self._idle(partition))))
            await self._send(outputs, acknowledge, len(records))
        now = time.time()
        c = self.counters
        c.events_in += len(records)
        c.first_event_at = c.first_event_at or now
        c.last_event_at = now

    async def _fill_holes(self, partition: int, batch: list[InputRecord]) -> list[InputRecord]:
        """The batch with the records of any hole Faust left in it read from Kafka, each before the record
        that followed it, and without repeats of records already processed (see ``offset_holes``)."""
        filled: list[InputRecord] = []
        for record in batch:
            tp = (self.topic_of[record.source], partition)
            await self._expect(tp)
            if self.holes.repeat(tp, record.offset):
                self.counters.repeats_skipped += 1
                continue
            hole = self.holes.delivered(tp, record.offset)
            if hole is not None:
                filled += await self._read_hole(
                    hole, " (the first record after taking the partition up)" if hole.first else "")
            filled.append(record)
        return filled

    async def _expect(self, tp: tuple[str, int]) -> None:
        """A partition just taken up starts at its group's committed offset (asked once per take-up)."""
        if tp not in self.holes.next:
            self.holes.starts_at(tp, await self.hole_reader.committed(*tp))

    async def _read_hole(self, hole: Hole, why: str) -> Sequence[InputRecord]:
        """The records Kafka holds inside a hole in what Faust delivered, said in the log and counted."""
        missing = await self.hole_reader.read(hole)
        log.warning("%s[%d]: offsets %d..%d were not delivered%s; read %d records of them from Kafka", hole.topic,
                    hole.partition, hole.start, hole.end - 1, why, len(missing))
        self.counters.hole_records += len(missing)
        return missing

    async def _fill_tail_holes(self, partitions: Iterable[int]) -> list[tuple[int, BatchOutput]]:
        """Records Faust left undelivered at the end of an input partition, read from Kafka and processed: an
        input silent for ``TAIL_SILENCE_S`` while the broker's end offset is past where it stands (see
        ``offset_holes``). If Faust was only slow, what it delivers of them later is skipped as a repeat."""
        outputs = []
        for partition in partitions:
            batch: list[InputRecord] = []
            for source in SOURCES:
                tp = (self.topic_of[source], partition)
                end = self.idleness.silent_behind(tp, TAIL_SILENCE_S)
                if end is None:
                    continue
                await self._expect(tp)
                hole = self.holes.tail(tp, end)
                if hole is None:
                    continue
                missing = await self._read_hole(hole, f" (the input silent for {TAIL_SILENCE_S:.0f} s)")
                for record in missing:
                    self.idleness.arrived(tp, record.offset)
                batch += missing
            if batch:
                proc = self.processor(partition)
                outputs.append((partition, proc.process(batch, self._loader(partition), self._idle(partition))))
                self.counters.events_in += len(batch)
        return outputs

    async def tick(self, partitions: Iterable[int]) -> None:
        """The timer's step for the partitions this worker owns (called once their state is restored)."""
        partitions = list(partitions)
        for partition in partitions:
            try:
                self.table.check_written(partition)  # a memtable flush that failed after the last write
            except StateNotWritten as exc:
                self.on_failure(f"{type(exc).__name__}: {exc}")
                return
        async with self.lock:
            filled = await self._fill_tail_holes(partitions)
            with TICKS.stall():
                outputs = filled + self._advance(partitions)
            if outputs or self._resend:
                await self._send(outputs, lambda: None, 0)

    def _advance(self, partitions: Iterable[int]) -> list[tuple[int, BatchOutput]]:
        """The wall clock's step of every partition: the part of the tick that holds the event loop."""
        outputs = []
        for partition in partitions:
            proc = self.processor(partition)
            idle = self._idle(partition)
            # The wall clock moves a partition only when all its inputs are idle, and only once it has seen
            # an event: a partition without history has nothing to finalise, and a floor raised there
            # would refuse as late the history it may yet be given.
            floor = None
            if len(idle) == len(SOURCES) and proc.newest_ms() is not None:
                floor = self.idleness.floor_ms()
            out = proc.advance(self._loader(partition), idle, floor)
            if out.writes or self._needs_mark(partition):
                outputs.append((partition, out))  # a quiet partition's last batch gets its mark
        return outputs

    def _needs_mark(self, partition: int) -> bool:
        """Whether rewards were delivered past the partition's last delivered mark."""
        return self._delivered.get(partition, -1) > self._marked.get(partition, -1)

    async def _send(self, outputs: list[tuple[int, BatchOutput]], acknowledge: Callable[[], None],
                    events: int) -> None:
        """Queue a step's writes, rewards and dead letters for Kafka, keep the writes in the overlay, and hand
        the step to the committer."""
        dead: list[tuple[bytes, bytes]] = []
        rewards, self._resend = self._resend, []
        resent_through, self._resend_through = self._resend_through, {}
        changelog: list[tuple[int, list[Write]]] = []
        for partition, out in outputs:
            frontier = self.processors[partition].newest_ms()
            for record, error in out.refused:
                dead.append((record.key or b"", dead_letter(self.topic_of[record.source], partition, record.offset,
                                                            record.key, record.value, error, frontier)))
            writes = out.writes
            if self._needs_mark(partition):
                delivered = self._delivered[partition]
                writes = [(mark_key(partition), mark_value(delivered)), *writes]
                self._marked[partition] = delivered
            if writes:
                changelog.append((partition, writes))
                rewards += out.reward_records  # the rewards its writes' outboxes carry, per user in their order
        self._seq += 1
        for partition, writes in changelog:
            pending = self._unapplied.setdefault(partition, {})
            for key, value in writes:
                pending[key] = (self._seq, value)
        deliveries = self.output.send(changelog, self.wire.outbound_records(self.settings.topic_rewards, rewards),
                                      self.wire.outbound_records(self.settings.topic_dead_letters, dead))
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_in_order())
        await self._in_flight.put(_InFlight(self._seq, changelog, deliveries, len(dead), acknowledge, events,
                                            resent_through))

    async def _commit_in_order(self) -> None:
        """Apply each batch locally and acknowledge its inputs once Kafka has its records, oldest first."""
        while True:
            batch = await self._in_flight.get()
            try:
                await self.output.wait(*batch.deliveries)
                log, out, _ = batch.deliveries
                for partition, writes in batch.changelog:
                    self.table.apply(partition, writes, log.offsets[partition])
                    if len(writes) > 1 or writes[0][0] != mark_key(partition):  # a mark alone needs no mark
                        self._delivered[partition] = log.offsets[partition]
                    pending = self._unapplied.get(partition, {})
                    for key, _ in writes:
                        if pending.get(key, (None,))[0] == batch.seq:
                            del pending[key]
                for partition, through in batch.resent_through.items():
                    self._delivered[partition] = max(self._delivered.get(partition, -1), through)
                batch.acknowledge()
                self.counters.dead_letters += batch.dead_letters
                self.counters.rewards_out += out.delivered_count
                self.counters.batches += 1
            except Exception as exc:  # never acknowledge what Kafka did not take
                self.on_failure(f"batch {batch.seq} ({batch.events} events) failed: {type(exc).__name__}: {exc}")
                return
            finally:
                self._in_flight.task_done()

    async def drain(self) -> None:
        """Until every batch sent so far is durable and acknowledged."""
        await self._in_flight.join()

    # ------------------------------------------------------------------ what /stats/ shows

    def stats_json(self) -> dict[str, Any]:
        return stats_json(self.counters, self.processors, self._idle, self.config, sent_again=self.redelivery.sent)
