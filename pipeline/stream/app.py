"""The Faust application: one agent takes batches from both input topics and hands them to the StreamWorker;
a one-second timer keeps partitions without input moving; the journeys table is a Faust table (RocksDB via
rocksdict, changelogged) so that Faust assigns, restores and hands over its partitions.

Faust-specific choices, each checked against faust-streaming 0.15.3 source:
- ``noack_take`` batches: Faust forbids table writes inside ``take()`` (#497), so the batch path writes the
  table's RocksDB and its changelog itself (``local_state``, ``output``), and the worker acknowledges a batch's
  inputs only once its output is durable (Faust acknowledges nothing by itself with ``noack_take``); the table
  keeps serving assignment, recovery and standby replicas.
- Raw bytes on every topic (``value_type=bytes``): Avro with fastavro is cheaper than Faust records.
- at_least_once, not exactly_once: Faust's transactional send derives the producer from the consumer's
  assignment, so a sink topic the app does not consume is sent outside the transaction (faust #177/#440).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import faust
from faust.types import TP

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig, Journey
from pipeline.engine.partition import CONVERSIONS, TOUCHPOINTS, InputRecord, journey_codec
from pipeline.kafka import partition_for
from pipeline.kafka.offset_range import OffsetRangeReader
from pipeline.settings import Settings
from pipeline.shell.changelog import CHANGELOG_RETENTION_MS, JOURNEYS_TABLE, changelog_topic
from pipeline.shell.failure import fatal
from pipeline.shell.idleness import TICK_SECONDS, Idleness
from pipeline.shell.outages import DEPENDENCIES, KAFKA
from pipeline.shell.tick_timing import TICKS
from pipeline.stream import web
from pipeline.stream.faust_runtime import app_kwargs, raw_table, recovered, watch_changelog
from pipeline.stream.local_state import JourneyTable
from pipeline.stream.offset_holes import Hole
from pipeline.stream.output import OutputProducer
from pipeline.stream.redelivery import Redelivery
from pipeline.stream.worker import StreamWorker

log = logging.getLogger("rewardstream.worker")

def _acknowledge(events: Sequence[Any]) -> None:
    for event in events:
        event.ack()


def create_app(settings: Settings, config: EngineConfig, learned: LearnedWeights | None = None
               ) -> tuple[faust.App, StreamWorker]:
    app = faust.App(**app_kwargs(settings))
    inputs = app.topic(settings.topic_touchpoints, settings.topic_conversions, key_type=bytes, value_type=bytes)
    cache = settings.rocksdb_cache_mb * 1024 * 1024
    journeys = app.Table(
        JOURNEYS_TABLE, key_type=str, value_type=bytes, partitions=settings.partitions,
        options={"block_cache_size": cache, "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024},
        extra_topic_configs={"min.compaction.lag.ms": str(CHANGELOG_RETENTION_MS)},
    )
    raw_table(journeys)
    redelivery = Redelivery()
    watch_changelog(journeys, redelivery.observe)  # what restore applies: rewards past the delivered mark

    table = JourneyTable(journeys)
    output = OutputProducer(settings, changelog_topic(settings))
    idleness = Idleness(settings.idle_timeout_seconds, settings.max_event_delay_seconds * 1000)
    source_of = {settings.topic_touchpoints: TOUCHPOINTS, settings.topic_conversions: CONVERSIONS}
    worker = StreamWorker(settings, config, learned, table, output, idleness, redelivery, on_failure=fatal,
                          hole_reader=KafkaHoleReader(settings, source_of))
    input_topics = set(source_of)

    @app.agent(inputs, concurrency=1)
    async def batches(stream: Any) -> None:
        # noack_take: Faust acknowledges nothing by itself; the worker's committer acknowledges each batch once
        # its output is durable (take_events would acknowledge as soon as the loop moves on).
        async for events in stream.noack_take(settings.batch_max_events, settings.batch_linger_ms / 1000):
            records = []
            for event in events:
                msg = event.message
                ingest = int(msg.timestamp * 1000) if msg.timestamp else None
                records.append((msg.partition, InputRecord(source_of[msg.topic], msg.offset, msg.key, event.value,
                                                           ingest)))
            try:
                await worker.submit(records, partial(_acknowledge, events))
            except Exception as exc:  # a bug: never acknowledge what was not done
                fatal(f"batch of {len(records)} records failed: {type(exc).__name__}: {exc}")

    def owned() -> list[int]:
        """Input partitions this worker processes, once Faust has restored their state."""
        if not recovered(app):
            return []
        return sorted({tp.partition for tp in app.assignor.assigned_actives() if tp.topic in input_topics})

    @app.timer(TICK_SECONDS)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        partitions = owned()
        if not partitions:
            return
        with TICKS.timed():
            await _tick(partitions)

    async def _tick(partitions: list[int]) -> None:
        tps = [TP(topic, p) for topic in input_topics for p in partitions]
        asked_at = time.monotonic()
        try:
            ends = await app.consumer.highwaters(*tps)
            positions = {tp: await app.consumer.position(tp) for tp in tps}
        except Exception as exc:  # the broker is out of reach: no input counts as caught up meanwhile
            DEPENDENCIES.down(KAFKA, f"end offsets unavailable: {type(exc).__name__}: {exc}")
        else:
            DEPENDENCIES.up(KAFKA, asked_at)
            idleness.broker_says({(tp.topic, tp.partition): end for tp, end in ends.items()},
                                 {(tp.topic, tp.partition): pos for tp, pos in positions.items()})
        still = set(owned())  # a rebalance may have begun while the broker answered
        try:
            await worker.tick([p for p in partitions if p in still])
        except Exception as exc:
            fatal(f"timer step failed: {type(exc).__name__}: {exc}")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        await worker.retire({tp.partition for tp in revoked if tp.topic in input_topics})

    def stats() -> dict[str, Any]:
        data = worker.stats_json()
        data["uptime_seconds"] = round(time.monotonic() - started, 1)
        return data

    def journey(user_id: str) -> Journey | None:
        key = user_id.encode()
        raw = table.get(partition_for(key, settings.partitions), key)
        return journey_codec.decode_journey(raw) if raw is not None else None

    started = time.monotonic()
    web.register(app, journeys, stats, journey, config, settings.web_token)
    return app, worker


class KafkaHoleReader:
    """``HoleReader`` by confluent-kafka, its blocking calls on a thread of the loop's executor."""

    def __init__(self, settings: Settings, source_of: dict[str, str]) -> None:
        self.group = settings.app_id  # Faust's consumer group
        self.source_of = source_of
        self.reader = OffsetRangeReader(settings)

    async def committed(self, topic: str, partition: int) -> int | None:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.reader.committed, topic,
                                                                    partition, self.group)
        except Exception as exc:  # the broker did not answer: the offsets are checked from the first record on
            log.warning("committed offset of %s[%d] unavailable: %s", topic, partition, exc)
            return None

    async def read(self, hole: Hole) -> list[InputRecord]:
        """The hole's records; while the broker is out of reach it keeps trying, as the rest of the worker
        waits for the broker (processing past the hole would lose them)."""
        while True:
            try:
                messages = await asyncio.get_running_loop().run_in_executor(
                    None, self.reader.read, hole.topic, hole.partition, hole.start, hole.end)
                break
            except TimeoutError as exc:
                log.warning("%s; trying again", exc)
        source = self.source_of[hole.topic]
        return [InputRecord.of_message(source, m) for m in messages]
