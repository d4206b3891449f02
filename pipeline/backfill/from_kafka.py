"""Re-attribute the history on the input topics: ``rewardstream backfill --from-kafka``.

The worker's own partition step (``pipeline.native.choice.partition_engine``, native or python) runs over
each partition's records as Kafka holds them, with the journeys in memory (their compact stored form) instead
of RocksDB. So a re-run with another model or window decides exactly as a worker with that configuration would
(the same decoding, dead-letter reasons, per-partition clock over both inputs, ingest-time future check),
without touching the live worker: records are read by assignment (no consumer group joins, no offsets are
committed), and nothing is written to its table or changelog.

Each partition is read up to the end offsets seen at the start (a snapshot), its two inputs merged in broker
time (the input topics are stamped with LogAppendTime, so that is arrival order). An input that has no more
records in the snapshot counts as idle, as it would in the stream once silent. At the end every window is
closed, as the file backfill does. Rewards go to a JSON Lines file (the file backfill's format) or to a topic
(Avro, keyed by user id, as the worker publishes them).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig, EngineStats
from pipeline.engine.partition import (
    CONVERSIONS,
    RESERVED_PREFIX,
    TOUCHPOINTS,
    BatchOutput,
    InputRecord,
    PartitionEngine,
)
from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.jsonl import reward_to_json
from pipeline.kafka.clients import consumer_config, drain, producer_config
from pipeline.kafka.framed_inputs import framed
from pipeline.kafka.schema_registry import wire_format
from pipeline.native.choice import DEFAULT_ENGINE, partition_engine
from pipeline.settings import Settings
from pipeline.sinks import DEFAULT_FORMAT, open_rewards

BATCH = 5000  # records per partition step
LOOKAHEAD = 50_000  # records one input may run ahead of the other in the merge before it is paused


@dataclass
class KafkaBackfillSummary:
    partitions: int
    events_in: int
    rejected: int
    rewards_out: int
    stats: EngineStats
    seconds: float

    def lines(self) -> list[str]:
        rate = self.events_in / self.seconds if self.seconds > 0 else float("inf")
        s = self.stats
        return [
            f"partitions:              {self.partitions}",
            f"events in:               {self.events_in:,} ({rate:,.0f} events/s)",
            f"conversions attributed:  {s.conversions_attributed:,} "
            f"(+{s.conversions_unattributed:,} with no touchpoint in their window)",
            f"rewards out:             {self.rewards_out:,} ({s.finals:,} final)",
            f"rejected:                {self.rejected:,}",
            f"duplicates ignored:      {s.duplicate_touchpoints + s.duplicate_conversions:,}",
        ]


class _Merge:
    """Both inputs of one partition, up to their snapshot ends, merged by (broker time, input, offset)."""

    def __init__(self, consumer: Any, topics: dict[str, str], partition: int, ends: dict[str, tuple[int, int]]):
        from confluent_kafka import TopicPartition

        self.consumer = consumer
        self.source_of = {topic: source for source, topic in topics.items()}
        self.tps = {source: TopicPartition(topics[source], partition) for source in topics}
        self.next_offset = {source: ends[source][0] for source in topics}
        self.end = {source: ends[source][1] for source in topics}
        self.buffers: dict[str, deque[InputRecord]] = {source: deque() for source in topics}
        self.paused: set[str] = set()
        self.empty_polls = 0
        consumer.assign([TopicPartition(topics[s], partition, ends[s][0]) for s in topics if ends[s][0] < ends[s][1]])

    def exhausted(self, source: str) -> bool:
        return not self.buffers[source] and self.next_offset[source] >= self.end[source]

    def _fill(self) -> None:
        msgs = drain(self.consumer, BATCH, 1.0)
        if not msgs:
            # past the last record there may be offsets that hold no record (transaction markers): the
            # consumer's position says how far it has really read
            for source, tp in self.tps.items():
                if self.next_offset[source] < self.end[source] and source not in self.paused:
                    pos = self.consumer.position([tp])[0].offset
                    if pos >= 0:
                        self.next_offset[source] = max(self.next_offset[source], pos)
            self.empty_polls += 1
            if self.empty_polls > 60:
                waiting = {s: (self.next_offset[s], self.end[s]) for s in self.tps if not self.exhausted(s)}
                raise RuntimeError(f"backfill: no records for 60 s before the snapshot's end (next, end): {waiting}")
            return
        self.empty_polls = 0
        for msg in msgs:
            if msg.error():
                raise RuntimeError(f"backfill: reading {msg.topic()}[{msg.partition()}] failed: {msg.error()}")
            source = self.source_of[msg.topic()]
            if msg.offset() >= self.end[source]:
                continue
            self.buffers[source].append(InputRecord.of_message(source, msg))
            self.next_offset[source] = msg.offset() + 1
        for source, buf in self.buffers.items():
            if len(buf) > LOOKAHEAD and source not in self.paused:
                self.consumer.pause([self.tps[source]])
                self.paused.add(source)
            elif len(buf) < LOOKAHEAD // 2 and source in self.paused:
                self.consumer.resume([self.tps[source]])
                self.paused.discard(source)

    def batches(self) -> Iterator[tuple[list[InputRecord], set[str]]]:
        """Batches in merge order, each with the inputs that had nothing left before it began (idle for the
        whole batch: a batch ends where an input runs out, so the clock never counts one idle too early)."""
        tp, cv = self.buffers[TOUCHPOINTS], self.buffers[CONVERSIONS]
        while not (self.exhausted(TOUCHPOINTS) and self.exhausted(CONVERSIONS)):
            idle = {s for s in (TOUCHPOINTS, CONVERSIONS) if self.exhausted(s)}
            batch: list[InputRecord] = []
            while len(batch) < BATCH:
                if tp and cv:
                    a, b = tp[0], cv[0]
                    batch.append(tp.popleft() if (a.ingest_ms or 0) <= (b.ingest_ms or 0) else cv.popleft())
                elif tp and CONVERSIONS in idle:
                    batch.append(tp.popleft())
                elif cv and TOUCHPOINTS in idle:
                    batch.append(cv.popleft())
                else:
                    break
            if batch:
                yield batch, idle
            else:
                self._fill()


class _Output:
    """Rewards to a file (JSON Lines or Parquet) or to a topic; refused records to a JSON Lines file."""

    def __init__(self, settings: Settings, output: Path | None, fmt: str, to_topic: str | None,
                 rejected: IO[bytes]) -> None:
        self.rejected = rejected
        self.file = open_rewards(output, fmt) if output is not None else None
        self.topic = to_topic
        self.producer: Any = None
        if to_topic is not None:
            from confluent_kafka import Producer

            self.producer = Producer(producer_config(settings, **{"linger.ms": 20}))
        self.codec = AvroCodec("attributed_reward")
        self.rewards = 0
        self.failed: list[str] = []

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def publish(self, rewards: list[tuple[bytes, bytes]]) -> None:
        """A step's rewards, (user key, Avro record) in the order the engine emitted them."""
        if not rewards:
            return
        self.rewards += len(rewards)
        if self.file is not None:
            dumps = orjson.dumps
            self.file.write(b"".join(dumps(reward_to_json(reward_from_record(self.codec.decode(r)))) + b"\n"
                                     for _, r in rewards))
        else:
            for key, record in rewards:
                while True:
                    try:
                        self.producer.produce(self.topic, key=key, value=record, on_delivery=self._delivered)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
            self.producer.poll(0)

    def refused(self, topics: dict[str, str], partition: int, out: BatchOutput) -> int:
        for r in out.refused:
            self.rejected.write(orjson.dumps({
                "topic": topics[r.record.source], "partition": partition, "offset": r.record.offset,
                "field": r.error.field, "reason": r.error.reason,
            }) + b"\n")
        return len(out.refused)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.producer is not None:
            left = self.producer.flush(60)
            if left:
                self.failed.append(f"{left} rewards not delivered within 60 s")
        if self.failed:
            raise RuntimeError(f"backfill: publishing to {self.topic} failed: {self.failed[0]} "
                               f"({len(self.failed)} failures)")


def run_kafka_backfill(
    settings: Settings,
    config: EngineConfig,
    learned: LearnedWeights | None = None,
    *,
    output: Path | None = None,
    to_topic: str | None = None,
    rejected_path: Path,
    engine: str = DEFAULT_ENGINE,
    partitions: list[int] | None = None,
    progress: Callable[[str], None] | None = None,
    fmt: str = DEFAULT_FORMAT,
) -> KafkaBackfillSummary:
    """Re-attribute the input topics' history into ``output`` (a file in ``fmt``) or ``to_topic`` (Avro)."""
    from confluent_kafka import Consumer, TopicPartition

    if (output is None) == (to_topic is None):
        raise ValueError("give exactly one of output (a file) and to_topic")
    if to_topic is not None and to_topic in (settings.topic_rewards, settings.topic_touchpoints,
                                             settings.topic_conversions, settings.topic_dead_letters):
        raise ValueError(f"{to_topic} is one of the live pipeline's topics; re-attributed history goes to a topic "
                         "of its own")
    topics = {TOUCHPOINTS: settings.topic_touchpoints, CONVERSIONS: settings.topic_conversions}
    # a group id is required by librdkafka; assignment without subscribe never joins it, nothing is committed
    consumer = Consumer(consumer_config(settings, f"rewardstream-backfill-{uuid.uuid4().hex[:8]}",
                                        **{"enable.auto.offset.store": False, "fetch.max.bytes": 16 << 20,
                                           "fetch.wait.max.ms": 20}))
    started = time.perf_counter()
    events_in = rejected = 0
    stats = EngineStats()
    try:
        meta = consumer.list_topics(timeout=30)
        counts = {s: len(meta.topics[t].partitions) if t in meta.topics and meta.topics[t].error is None else 0
                  for s, t in topics.items()}
        missing = [topics[s] for s, n in counts.items() if n == 0]
        if missing:
            raise ValueError(f"topics not found on {settings.bootstrap_servers}: {missing}")
        if counts[TOUCHPOINTS] != counts[CONVERSIONS]:
            raise ValueError(f"the input topics are not co-partitioned: {counts}")
        chosen = partitions if partitions is not None else list(range(counts[TOUCHPOINTS]))
        with rejected_path.open("wb") as rej:
            out = _Output(settings, output, fmt, to_topic, rej)
            try:
                for p in chosen:
                    ends = {s: consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)
                            for s, t in topics.items()}
                    # no outbox: the journeys kept here carry none; each step hands its rewards over in reward_records
                    proc = framed(partition_engine(engine, p, config, learned, 10_000, outbox=False),
                                  wire_format(settings))
                    n_in, n_rej = _backfill_partition(consumer, topics, p, ends, proc, config, out)
                    events_in += n_in
                    rejected += n_rej
                    stats = stats + proc.stats
                    if progress is not None:
                        progress(f"partition {p}: {n_in:,} records, {out.rewards:,} rewards so far")
            finally:
                out.close()
    finally:
        consumer.close()
    return KafkaBackfillSummary(partitions=len(chosen), events_in=events_in, rejected=rejected,
                                rewards_out=out.rewards, stats=stats, seconds=time.perf_counter() - started)


def _backfill_partition(consumer: Any, topics: dict[str, str], partition: int, ends: dict[str, tuple[int, int]],
                        proc: PartitionEngine, config: EngineConfig, out: _Output) -> tuple[int, int]:
    store: dict[bytes, bytes] = {}

    def load(keys: list[bytes]) -> list[bytes | None]:
        return [store.get(k) for k in keys]

    def keep(step: BatchOutput) -> None:
        """The step's journey writes into the store, as written (the engine keeps no outbox in them)."""
        for key, value in step.writes:
            if key.startswith(RESERVED_PREFIX):
                continue
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value

    events_in = rejected = 0
    merge = _Merge(consumer, topics, partition, ends)
    try:
        for batch, idle in merge.batches():
            events_in += len(batch)
            step = proc.process(batch, load, idle)
            keep(step)
            out.publish(step.reward_records)
            rejected += out.refused(topics, partition, step)
    finally:
        consumer.unassign()
    # end of input: close every window, as the file backfill does (EventEngine.flush's floor)
    newest = proc.newest_ms()
    if newest is not None:
        floor = newest + config.max_window_ms + config.refund_retention_ms + config.allowed_lateness_ms + 2
        while True:
            step = proc.advance(load, (TOUCHPOINTS, CONVERSIONS), floor)
            keep(step)
            out.publish(step.reward_records)
            if not any(not k.startswith(RESERVED_PREFIX) for k, _ in step.writes):
                break
    return events_in, rejected

