"""The Kafka-native worker: confluent-kafka clients driving the partition contract, exactly once by Kafka
transactions.

One thread runs the loop: read a batch, hand each partition's records to its ``PartitionEngine`` (the same
contract, engines and journey format as the Faust runtime), produce what the step wrote — journey changelog
records, rewards, dead letters — into the open transaction, and commit the transaction with the inputs' offsets
(``send_offsets_to_transaction`` with the group's metadata, EOS v2) at most ``commit_interval_ms`` after it
began, or at once when the worker has caught up. Only then are the writes applied to the local store. So the
rewards, the state they came from and the offsets of the inputs that caused them become visible together or not
at all: a ``read_committed`` reader sees every reward exactly once, whatever crashes in between.

Co-partitioning: the consumer group (cooperative-sticky) subscribes to the touchpoints topic only; the
conversions partition with the same number follows its touchpoints partition on a second, assign-only consumer
of the same group, and both partitions' offsets are committed in the same transaction. The sticky assignor
balances the topics of a subscription independently, so subscribing to both would often give a user's
touchpoints and conversions to different workers.

After a failed transaction (aborted), the state it wrote is undone by rebuilding each partition's engine from
its committed store and reading its inputs again from the committed offsets. A zombie (a worker whose
partitions moved while it was paused, or a second worker started with its transactional id) is refused by the
broker at its next commit. Fenced by another producer with its transactional id, a worker stops; a fence after
the transaction's timeout is the broker's own abort of that transaction, and the worker goes on with a new
producer.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig, EngineStats, Journey
from pipeline.engine.partition import (
    CONVERSIONS,
    SOURCES,
    TOUCHPOINTS,
    BatchOutput,
    InputRecord,
    PartitionEngine,
    journey_codec,
)
from pipeline.kafka import partition_for
from pipeline.kafka.clients import admin_client, consumer_config, drain, group_liveness, producer_config
from pipeline.kafka.framed_inputs import framed
from pipeline.kafka.schema_registry import wire_format
from pipeline.kafka.topics import ensure_topics
from pipeline.native.choice import partition_engine
from pipeline.runtime.end_offsets import EndOffsets
from pipeline.runtime.http import WorkerViews
from pipeline.runtime.input_marks import input_mark, input_mark_key, sources_behind
from pipeline.runtime.merge import PartitionMerge
from pipeline.runtime.restore import RestoreStalled, restore
from pipeline.runtime.routing import PartitionOwners, client_id
from pipeline.runtime.store import PartitionStore
from pipeline.settings import Settings
from pipeline.shell import outages
from pipeline.shell.changelog import changelog_config, changelog_topic
from pipeline.shell.dead_letters import dead_letter
from pipeline.shell.failure import fatal
from pipeline.shell.idleness import TICK_SECONDS, Idleness
from pipeline.shell.outages import DEPENDENCIES, KAFKA
from pipeline.shell.stats import WorkerCounters, retire, stats_json
from pipeline.shell.tick_timing import TICKS

log = logging.getLogger("rewardstream.worker")

POLL_SECONDS = 0.005  # the longest the loop waits for input when there is none (conversions' added latency)
TRANSACTION_TIMEOUT_MS = 10_000  # a killed worker's open transaction is aborted by the broker after this long
CLIENT_TIMEOUT_S = 60.0  # blocking client calls: commit, committed offsets, restore's end offset
RESTORE_TIMEOUT_S = 600.0
PREFETCH_KIB = 16 * 1024  # records a consumer fetches ahead of the loop, at most
RETRY_PAUSE_S = 0.5  # between attempts of a client call that failed with a transient error
RESTORE_ATTEMPTS = 3  # restores of a partition whose state came out behind its committed offsets, at most
# how long send_offsets_to_transaction may take before its producer is given up for a new one: past the
# transaction's timeout the broker has aborted the transaction anyway
SEND_OFFSETS_BOUND_S = TRANSACTION_TIMEOUT_MS / 1000 + 5
GC_YOUNG_THRESHOLD = 50_000  # allocations between collections of the youngest generation (Python's default: 700)


def transactional_id(settings: Settings) -> str:
    """The worker's transactional id: configured, or stable for this host and state directory, so a restarted
    worker fences its own previous incarnation and two workers never share one."""
    if settings.transactional_id:
        return settings.transactional_id
    where = f"{socket.gethostname()}:{Path(settings.datadir).resolve()}"
    return f"{settings.app_id}-{zlib.crc32(where.encode()):08x}"


@dataclass
class OwnedPartition:
    """A partition this worker processes: its store, engine and merge, and where its inputs stand."""

    partition: int
    store: PartitionStore
    engine: PartitionEngine
    merge: PartitionMerge
    committed: dict[str, int]  # source → input offset committed with the last transaction (a rewind goes there)
    consumed: dict[str, int] = field(default_factory=dict)  # source → the offset after the last record read
    overlay: dict[bytes, bytes | None] = field(default_factory=dict)  # writes of the open transaction
    committed_stats: EngineStats = field(default_factory=EngineStats)  # the engine's counters at the last commit

    def commit_offset(self, source: str) -> int:
        return self.merge.commit_offset(source, self.consumed.get(source, self.committed[source]))


class KafkaWorker:
    def __init__(self, settings: Settings, config: EngineConfig, learned: LearnedWeights | None) -> None:
        from confluent_kafka import Consumer

        self.settings = settings
        self.config = config
        self.learned = learned
        self.topic_of = {TOUCHPOINTS: settings.topic_touchpoints, CONVERSIONS: settings.topic_conversions}
        self.source_of = {topic: source for source, topic in self.topic_of.items()}
        self.changelog = changelog_topic(settings)
        self.root = Path(settings.datadir) / "journeys"
        self.transactional_id = transactional_id(settings)
        group = settings.app_id
        # librdkafka prefetches up to 64 MiB a consumer by default; a batch is a few MiB at most
        prefetch = {"queued.max.messages.kbytes": PREFETCH_KIB}
        self.consumer = Consumer(consumer_config(settings, group, **prefetch, **{
            "client.id": client_id(settings.web_host, settings.web_port),  # how other workers find our views
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.offset.store": False,
            **group_liveness(settings),
        }))
        self.follower = Consumer(consumer_config(settings, group, **prefetch, **{"enable.auto.offset.store": False}))
        self.restorer = Consumer(consumer_config(settings, f"{group}-restore", **prefetch))
        self.producer = self._new_producer()
        self.admin = admin_client(settings)
        self.wire = wire_format(settings)  # the topics' framing: inputs reframed for the engine, outputs back
        self.end_offsets = EndOffsets(self.admin)
        self.idleness = Idleness(settings.idle_timeout_seconds, settings.max_event_delay_seconds * 1000)
        self.parts: dict[int, OwnedPartition] = {}
        self.counters = WorkerCounters()
        owners = PartitionOwners(self.admin, group, self.topic_of[TOUCHPOINTS])
        self.views = WorkerViews(settings.web_bind, settings.web_port, settings.web_token, config, self.journey,
                                 owners.address)
        self._stopping = False
        self._in_txn = False
        self._txn_started = 0.0
        self._txn_rewards = 0
        self._txn_dead = 0
        self._txn_events = 0
        self._changelog_offsets: dict[int, int] = {}  # partition → highest changelog offset of the open txn
        self._delivery_error: str | None = None
        self._abandoned: list[Any] = []  # producers given up inside a call that never returned
        self._moves = 0  # times the inputs' positions were set outside the loop's reading: undos, take-ups
        self.transactions = 0
        self.aborted = 0
        self.restored_records = 0
        self._started = time.monotonic()

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        outages.install()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        ensure_topics(self.settings, [self.changelog], config=changelog_config())
        self.producer.init_transactions(CLIENT_TIMEOUT_S)
        self.consumer.subscribe([self.topic_of[TOUCHPOINTS]], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.views.start()
        self._publish()
        # Every step builds lists of tuples (writes, rewards): with the default thresholds the cyclic collector
        # ran every few hundred of them and rescanned every long-lived object of the process each time (a fifth
        # of the engine's step in a profile). What exists now lives as long as the worker: frozen out of the
        # collector's scans; the young generation is collected less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 50)
        max_events = self.settings.batch_max_events
        commit_after = self.settings.commit_interval_ms / 1000
        next_tick = time.monotonic()
        try:
            while not self._stopping:
                messages = self._fetch(max_events)
                if messages:
                    self._take(messages)
                self._release_held()
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + TICK_SECONDS
                if self._in_txn and (not messages or now - self._txn_started >= commit_after):
                    self._commit()
                self.producer.poll(0)
            if self._in_txn:
                self._commit()
        except Exception as exc:  # a bug or a client failure: never commit what was not done
            fatal(f"{type(exc).__name__}: {exc}")
        self.consumer.close()  # hands the partitions over (their state stays on disk for a restart)
        for client in (self.follower, self.restorer):
            client.close()
        self.producer.flush(CLIENT_TIMEOUT_S)
        self.views.close()
        return 0

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("signal %d: finishing the open transaction and stopping", signum)
        self._stopping = True

    # ------------------------------------------------------------------ records in

    def _take(self, messages: Sequence[Any]) -> None:
        now_ms = int(time.monotonic() * 1000)
        by_partition: dict[int, list[InputRecord]] = {}
        source_of = self.source_of
        for msg in messages:
            err = msg.error()
            if err is not None:
                log.warning("input: %s", err)
                continue
            _, ts = msg.timestamp()
            by_partition.setdefault(msg.partition(), []).append(
                InputRecord(source_of[msg.topic()], msg.offset(), msg.key(), msg.value(), ts if ts > 0 else None))
        for partition, records in by_partition.items():
            part = self.parts.get(partition)
            if part is None:
                continue  # read just before the partition was handed over
            for record in records:
                part.consumed[record.source] = record.offset + 1
            for source in SOURCES:
                if source in part.consumed:
                    self.idleness.arrived((self.topic_of[source], partition), part.consumed[source] - 1)
            ready = part.merge.add(records, part.engine.event_times(records), now_ms)
            if ready:
                self._step(part, ready)
        self.counters.events_in += len(messages)
        now = time.time()
        self.counters.first_event_at = self.counters.first_event_at or now
        self.counters.last_event_at = now

    def _fetch(self, max_events: int) -> list[Any]:
        """The records read in one turn of the loop: the touchpoints consumer's (the group's: its calls run the
        rebalance callbacks) and, when partitions are owned, the conversions follower's.

        None when partitions were taken up or a transaction was undone while they were fetched (in a rebalance
        callback): every owned input is then sought back to the first record not yet taken. A consumer hands
        records over in batches and runs the callback inside the call that fetches one, so records fetched
        before it, from positions it has since changed, would be taken after it: after an undo's seek back to the
        committed offsets, records ahead of the rewound position taken before the ones read again; for a
        partition taken up again, records of its previous ownership. Out of order, an event far ahead of the
        ones read again moves the partition's clock past them, and they are refused as late."""
        moves = self._moves
        messages = drain(self.consumer, max_events, POLL_SECONDS)
        if self.parts:
            messages += self.follower.consume(max_events, 0)
        if self._moves == moves:
            return messages
        if messages:
            log.info("%d records fetched while partitions were taken up or a transaction undone: read again",
                     len(messages))
        self._seek_to_next()
        return []

    def _seek_to_next(self) -> None:
        """Every owned input sought to the first record not yet taken (after an undo, its committed offset)."""
        from confluent_kafka import TopicPartition

        for p, part in self.parts.items():
            for source, client in ((TOUCHPOINTS, self.consumer), (CONVERSIONS, self.follower)):
                client.seek(TopicPartition(self.topic_of[source], p, part.consumed.get(source, part.committed[source])))

    def _release_held(self) -> None:
        """Held conversions whose wait is over (see ``merge``)."""
        wall_ms, now_ms = time.time_ns() // 1_000_000, int(time.monotonic() * 1000)
        for part in self.parts.values():
            if part.merge.held:
                ready = part.merge.due(self._caught_up(part, TOUCHPOINTS), wall_ms, now_ms)
                if ready:
                    self._step(part, ready)

    def _caught_up(self, part: OwnedPartition, source: str) -> bool:
        """Whether the input has nothing more to fetch, by the high watermark of its last fetch."""
        from confluent_kafka import TopicPartition

        consumer = self.consumer if source == TOUCHPOINTS else self.follower
        _, high = consumer.get_watermark_offsets(TopicPartition(self.topic_of[source], part.partition),
                                                 cached=True)
        return high >= 0 and part.consumed.get(source, part.committed[source]) >= high

    def _idle(self, partition: int) -> list[str]:
        return [s for s in SOURCES if self.idleness.idle((self.topic_of[s], partition))]

    # ------------------------------------------------------------------ steps and what they write

    def _step(self, part: OwnedPartition, records: list[InputRecord]) -> None:
        out = part.engine.process(records, part.store.loader(part.overlay), self._idle(part.partition))
        self._txn_events += len(records)
        self._emit(part, out)

    def _tick(self) -> None:
        """Once a second: the broker's end offsets for idleness, and the wall clock's step for idle partitions."""
        with TICKS.timed(holds_loop=True):
            self._tick_timed()

    def _tick_timed(self) -> None:
        for part in self.parts.values():
            part.store.check_written()  # a memtable flush that failed after the last write (a full disk)
        # A client hands its log lines to the logger only when it is polled: lines an idle client wrote during an
        # outage would come out when it is next used (a restore, after the broker is back) and say the broker is
        # down again. The restorer is unassigned here, and so is the follower while no partition is owned.
        self.restorer.poll(0)
        if not self.parts:
            self.follower.poll(0)
        asked_at = self.end_offsets.requested_at
        ends = self.end_offsets.collect()
        if ends:
            DEPENDENCIES.up(KAFKA, asked_at)  # only an answer says the broker is back
        # where this worker reads next: an input that delivered nothing since it was taken up (the log's end was
        # reached before, or it never had a record) is caught up by its position, not by a record
        positions = {(self.topic_of[s], p): part.consumed.get(s, part.committed[s])
                     for p, part in self.parts.items() for s in SOURCES}
        self.idleness.broker_says({tp: end for tp, end in ends.items() if tp in positions}, positions)
        # every input partition, owned or not: a worker that lost its partitions over an outage must still learn
        # that the broker is back
        self.end_offsets.request([(self.topic_of[s], p) for p in range(self.settings.partitions) for s in SOURCES])
        for partition, part in self.parts.items():
            idle = self._idle(partition)
            floor = None
            if len(idle) == len(SOURCES) and part.engine.newest_ms() is not None:
                floor = self.idleness.floor_ms()
            self._emit(part, part.engine.advance(part.store.loader(part.overlay), idle, floor))
        self._publish()

    def _begin(self) -> None:
        if not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True
            self._txn_started = time.monotonic()

    def _emit(self, part: OwnedPartition, out: BatchOutput) -> None:
        if not out.writes and not out.refused and not out.reward_records:
            return
        self._begin()
        partition = part.partition
        produce = self._produce
        if out.writes:
            part.overlay.update(out.writes)
            produce(self.changelog, out.writes, partition, self._changelog_delivered)
        if out.reward_records:
            produce(self.settings.topic_rewards, self.wire.outbound_records(self.settings.topic_rewards,
                                                                            out.reward_records))
            self._txn_rewards += len(out.reward_records)
        if out.refused:
            frontier = part.engine.newest_ms()
            letters = [(r.key or b"", dead_letter(self.topic_of[r.source], partition, r.offset, r.key, r.value,
                                                  error, frontier)) for r, error in out.refused]
            produce(self.settings.topic_dead_letters,
                    self.wire.outbound_records(self.settings.topic_dead_letters, letters))
            self._txn_dead += len(letters)

    def _produce(self, topic: str, records: Sequence[tuple[bytes, bytes | None]], partition: int = -1,
                 last_delivered: Any = None) -> None:
        """Records into the open transaction (``partition`` -1: by key). Only the last record of a call asks for
        its delivery report: records to one partition are written in order, so it carries the highest offset."""
        produce = self.producer.produce
        last = len(records) - 1
        for i, (key, value) in enumerate(records):
            while True:
                try:
                    if i == last and last_delivered is not None:
                        produce(topic, value, key, partition, last_delivered)
                    else:
                        produce(topic, value, key, partition)
                    break
                except BufferError:  # librdkafka's local queue is full: let deliveries drain it
                    self.producer.poll(0.005)

    def _changelog_delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_error = f"{msg.topic()}[{msg.partition()}]: {err}"
            return
        partition, offset = msg.partition(), msg.offset()
        if offset > self._changelog_offsets.get(partition, -1):
            self._changelog_offsets[partition] = offset

    # ------------------------------------------------------------------ transactions

    def _commit(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        inputs = {p: {s: part.commit_offset(s) for s in SOURCES} for p, part in self.parts.items()}
        offsets = [TopicPartition(self.topic_of[s], p, at[s]) for p, at in inputs.items() for s in SOURCES]
        for p, at in inputs.items():
            part = self.parts[p]
            if at != part.committed:  # the state's input mark moves with the offsets (see input_marks)
                mark = (input_mark_key(p), input_mark(at))
                part.overlay[mark[0]] = mark[1]
                self._produce(self.changelog, [mark], p, self._changelog_delivered)
        try:
            self.producer.flush(CLIENT_TIMEOUT_S)  # every delivery report in: the changelog offsets reached
            if self._delivery_error is not None:  # e.g. timed out while a killed node's partitions moved
                log.warning("transaction aborted (a changelog record was not delivered: %s): undoing its %d "
                            "events and reading them again", self._delivery_error, self._txn_events)
                self._abort()
                return
            if offsets:
                metadata = self.consumer.consumer_group_metadata()
                producer = self.producer
                _retrying(lambda: returning_within(
                    partial(producer.send_offsets_to_transaction, offsets, metadata, TRANSACTION_TIMEOUT_MS / 1000),
                    SEND_OFFSETS_BOUND_S))
            _retrying(lambda: self.producer.commit_transaction(CLIENT_TIMEOUT_S))
        except KafkaException as exc:
            self._failed(exc.args[0])
            return
        except CallHung as hung:
            # librdkafka can wait for ever for a group coordinator it dropped (issue 5511: a node that left the
            # cluster's metadata, as a killed coordinator's does): the producer is given up, a new one with the
            # same transactional id has the broker abort what the old one left open
            log.warning("transaction abandoned (%s): a new producer; its %d events are read again", hung,
                        self._txn_events)
            self._replace_producer()  # never destroyed: a thread of ours still waits inside it
            return
        self._in_txn = False
        for p, part in self.parts.items():
            if part.overlay:
                part.store.apply(part.overlay, self._changelog_offsets[p])
                part.overlay = {}
            part.committed = inputs[p]
            part.committed_stats = part.engine.stats + EngineStats()  # a copy
        self._changelog_offsets.clear()
        c = self.counters
        c.rewards_out += self._txn_rewards
        c.dead_letters += self._txn_dead
        c.batches += 1
        self.transactions += 1
        self._txn_rewards = self._txn_dead = self._txn_events = 0

    def _new_producer(self) -> Any:
        """The transactional producer. It never re-bootstraps: when every broker was out of reach, librdkafka
        (2.10 and later) drops the brokers it had learned and starts again from the bootstrap servers, and a
        dropped broker can stay cached as the group's coordinator, so the next ``send_offsets_to_transaction``
        waits for it for ever, past its own timeout (librdkafka issue 5511, unfixed in 2.16). Seen here after
        every broker restart: the worker took its partitions up again and then stopped in that call. Without
        re-bootstrap the learned brokers stay, and reconnect when the broker is back."""
        from confluent_kafka import Producer

        return Producer(producer_config(self.settings, **{
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "metadata.recovery.strategy": "none",
        }))

    def _failed(self, err: Any) -> None:
        """A transaction that could not commit: stop if this worker was fenced or the producer is broken, else
        abort it and undo what it wrote."""
        if _fenced(err) and self._timed_out():
            log.warning("transaction timed out at the broker after %.1f s (%s): a new producer; its %d events are "
                        "read again", self._txn_age(), err.str(), self._txn_events)
            self._replace_producer()
            return
        if err.fatal() or not err.txn_requires_abort():
            fatal(f"transaction failed after {self._txn_age():.1f} s ({err.str()}): another worker with "
                  f"transactional id {self.transactional_id!r} or a newer generation of the group has taken over, "
                  "or the producer cannot go on")
        log.warning("transaction aborted (%s): undoing its %d events and reading them again", err.str(),
                    self._txn_events)
        self._abort()

    def _txn_age(self) -> float:
        return time.monotonic() - self._txn_started

    def _timed_out(self) -> bool:
        """Whether the open transaction has outlived its timeout. The broker then aborts it and bumps the
        producer's epoch, and librdkafka reports the next call as fenced (``_FENCED``) though no other producer
        exists: seen when a killed node's partitions held a transaction's records past the timeout. A fence
        inside the timeout can only come from another producer with this transactional id."""
        return self._txn_age() >= TRANSACTION_TIMEOUT_MS / 1000

    def _replace_producer(self) -> None:
        """The producer is unusable (broken or fenced by the broker's own abort): set aside, never called again
        (its callbacks may raise), a new one takes its transactional id, and the transaction is undone."""
        self._abandoned.append(self.producer)
        self._restart_producer()
        self._undo()

    def _abort(self) -> None:
        from confluent_kafka import KafkaException

        try:
            _retrying(lambda: self.producer.abort_transaction(CLIENT_TIMEOUT_S))
        except KafkaException as exc:
            if _fenced(exc.args[0]) and not self._timed_out():
                fatal(f"transaction could not be aborted after {self._txn_age():.1f} s: {exc.args[0].str()}: "
                      f"another worker with transactional id {self.transactional_id!r} has taken over")
            # The transaction coordinator moved with the transaction half ended (seen when its node was killed;
            # librdkafka may call that error fatal, for this producer), or the broker timed the transaction out:
            # nothing of it was committed (every caller aborts before a commit, or after one the broker refused),
            # so a new producer with the same transactional id fences the old one and has the broker abort what
            # it left open, as a restarted worker would.
            log.warning("transaction could not be aborted after %.1f s (%s): starting a new producer",
                        self._txn_age(), exc.args[0].str())
            self._replace_producer()
            return
        self._undo()

    def _restart_producer(self) -> None:
        """A new transactional producer with the same id: its ``init_transactions`` fences the old one and has
        the broker abort the transaction the old one left open, as a restarted worker's would."""
        self.producer = self._new_producer()
        _retrying(lambda: self.producer.init_transactions(CLIENT_TIMEOUT_S))

    def _undo(self) -> None:
        """The open transaction is gone (aborted): its writes are forgotten, every partition's engine is rebuilt
        from its committed store and its inputs are read again from the committed offsets."""
        self._in_txn = False
        self._changelog_offsets.clear()
        self._delivery_error = None
        self._txn_rewards = self._txn_dead = self._txn_events = 0
        self.aborted += 1
        self._moves += 1
        for p, part in self.parts.items():
            part.overlay = {}
            part.merge.drop()
            retire(self.counters, part.committed_stats)
            part.engine = self._engine(p, part.store)
            part.committed_stats = EngineStats()
            part.consumed = dict(part.committed)
        self._seek_to_next()

    # ------------------------------------------------------------------ partitions come and go

    def _engine(self, partition: int, store: PartitionStore) -> PartitionEngine:
        engine = framed(partition_engine(self.settings.engine, partition, self.config, self.learned,
                                         self.settings.expiry_slice, outbox=False), self.wire)
        engine.restore(store.items())
        return engine

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import TopicPartition

        numbers = sorted(tp.partition for tp in partitions)
        if not numbers:
            return
        try:
            wanted = [TopicPartition(self.topic_of[s], p) for p in numbers for s in SOURCES]
            starts: dict[tuple[str, int], int] = {}
            refresh = self._refresh_metadata
            for tp in _retrying(lambda: self.follower.committed(wanted, timeout=CLIENT_TIMEOUT_S), refresh):
                offset = tp.offset
                if offset < 0:  # nothing committed yet: from the start of what the topic holds
                    offset = _retrying(partial(self.follower.get_watermark_offsets, tp, timeout=CLIENT_TIMEOUT_S),
                                       refresh)[0]
                starts[(tp.topic, tp.partition)] = offset
            restored_now = 0
            where: list[str] = []  # per partition: records restored, the changelog's end, the inputs' offsets
            for p in numbers:
                committed = {s: starts[(self.topic_of[s], p)] for s in SOURCES}
                store, restored = self._restored(p, committed)
                self.restored_records += restored
                merge = PartitionMerge(self.settings.max_task_idle_ms, self.settings.idle_timeout_seconds * 1000)
                self.parts[p] = OwnedPartition(p, store, self._engine(p, store), merge, committed)
                restored_now += restored
                where.append(f"{p}: {restored} to changelog offset {store.offset() + 1}, inputs at "
                             f"{committed[TOUCHPOINTS]}/{committed[CONVERSIONS]}")
            log.info("partitions %s taken up: %d changelog records restored (%s)", numbers, restored_now,
                     "; ".join(where))
            consumer.incremental_assign([TopicPartition(self.topic_of[TOUCHPOINTS], p, starts[
                (self.topic_of[TOUCHPOINTS], p)]) for p in numbers])
            self.follower.incremental_assign([TopicPartition(self.topic_of[CONVERSIONS], p, starts[
                (self.topic_of[CONVERSIONS], p)]) for p in numbers])
            self._moves += 1
        except Exception as exc:
            fatal(f"partitions {numbers} could not be taken up: {type(exc).__name__}: {exc}")

    def _restored(self, partition: int, committed: dict[str, int]) -> tuple[PartitionStore, int]:
        """The partition's store brought up to its changelog's end, and how many records that took. A store whose
        input mark is behind the committed offsets was restored short of what was committed: it is wiped and
        restored again from the changelog's start, with fresh metadata, a few times, before the worker gives up."""
        settings = self.settings
        for attempt in range(1, RESTORE_ATTEMPTS + 1):
            store = PartitionStore(self.root, partition, settings.rocksdb_cache_mb, settings.rocksdb_write_buffer_mb)
            restored = _retrying(partial(restore, store, self.restorer, self.admin, self.changelog,
                                         RESTORE_TIMEOUT_S), self._refresh_metadata)
            mark = store.get(input_mark_key(partition))
            behind = sources_behind(mark, committed)
            if not behind:
                return store, restored
            log.warning("partition %d restored short (attempt %d of %d): its state has taken inputs %s, the group "
                        "has committed %s; the store reaches changelog offset %d. Restoring it again from the "
                        "start", partition, attempt, RESTORE_ATTEMPTS, (mark or b"").decode(), committed,
                        store.offset() + 1)
            store.destroy()
            self._refresh_metadata()
            time.sleep(RETRY_PAUSE_S * attempt)
        raise RestoreStalled(f"{self.changelog}[{partition}]: restored {RESTORE_ATTEMPTS} times, its state is still "
                             f"behind the committed input offsets {committed} (sources {behind}): committed state "
                             "is missing from the changelog, or the offsets were moved outside the worker")

    def _refresh_metadata(self) -> None:
        """Every client asks the brokers for the topics' metadata again (leaders and their epochs)."""
        for client in (self.follower, self.restorer, self.admin):
            for topic in (*self.topic_of.values(), self.changelog):
                try:
                    client.list_topics(topic, timeout=5)
                except Exception as exc:  # the broker is still out of reach: the next attempt asks again
                    log.debug("metadata of %s not refreshed: %s", topic, exc)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions moving to another worker: the open transaction goes out first (with their offsets), so
        the next owner restores exactly what was committed."""
        try:
            if self._in_txn:
                self._commit()
            self._hand_over(sorted(tp.partition for tp in partitions))
        except Exception as exc:
            fatal(f"partitions could not be handed over: {type(exc).__name__}: {exc}")

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Partitions taken away without a handover (this worker missed the group's session): what it has not
        committed can no longer be, and must not be."""
        try:
            if self._in_txn:
                self._abort()
            self._hand_over(sorted(tp.partition for tp in partitions))
        except Exception as exc:
            fatal(f"lost partitions could not be dropped: {type(exc).__name__}: {exc}")

    def _hand_over(self, numbers: list[int]) -> None:
        from confluent_kafka import TopicPartition

        gone = [p for p in numbers if p in self.parts]
        self.follower.incremental_unassign([TopicPartition(self.topic_of[CONVERSIONS], p) for p in gone])
        for p in gone:
            part = self.parts.pop(p)
            retire(self.counters, part.engine.stats)
            if self._stopping:
                part.store.close()  # a clean stop keeps the state for the restart
            else:
                part.store.destroy()  # the next owner restores it; a stale copy here must never be reused
            for s in SOURCES:
                self.idleness.forget((self.topic_of[s], p))
        if gone:
            log.info("partitions %s handed over", gone)
        self._publish()

    # ------------------------------------------------------------------ what the HTTP views show

    def journey(self, user_id: str) -> tuple[bool, Journey | None, int]:
        key = user_id.encode()
        partition = partition_for(key, self.settings.partitions)
        part = self.parts.get(partition)
        if part is None:
            return False, None, partition
        try:
            raw = part.store.get(key)
        except Exception:  # the store closed under the request (a rebalance)
            return False, None, partition
        return True, (journey_codec.decode_journey(raw) if raw is not None else None), partition

    def _publish(self) -> None:
        extra = {
            "runtime": "kafka",
            "transactions": self.transactions,
            "transactions_aborted": self.aborted,
            "conversions_held": sum(len(p.merge.held) for p in self.parts.values()),
            "restored_records": self.restored_records,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
        }
        engines = {p: part.engine for p, part in self.parts.items()}
        self.views.publish(stats_json(self.counters, engines, self._idle, self.config, extra=extra))


T = TypeVar("T")


class CallHung(Exception):
    """A client call did not return within its bound (it is still running on a thread of its own)."""


def _fenced(err: Any) -> bool:
    """Whether a Kafka error says a newer producer with this transactional id exists (another worker, or this
    one's successor): then this worker must stop, not start a producer that would fence that one in turn."""
    from confluent_kafka import KafkaError

    return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)


def returning_within(call: Callable[[], T], seconds: float) -> T:
    """``call()`` on a thread of its own, its result or its exception; ``CallHung`` if it has not returned after
    ``seconds``. For the client calls that can wait past their own timeout; the caller must give up the client
    the call is still inside."""
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            box.append((False, exc))
        done.set()

    threading.Thread(target=run, name="bounded-client-call", daemon=True).start()
    if not done.wait(seconds):
        raise CallHung(f"{getattr(call, 'func', call).__name__} did not return in {seconds:.0f} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _retrying(call: Callable[[], T], refresh: Callable[[], None] = lambda: None,
              within: float = CLIENT_TIMEOUT_S) -> T:
    """``call()``, again after a pause while it fails with an error Kafka calls retriable (a leader or coordinator
    moving, a broker just restarted: ``FENCED_LEADER_EPOCH``, ``NOT_COORDINATOR``, timeouts), for up to ``within``
    seconds; any other error at once. ``refresh`` runs before each new attempt (fresh metadata: a client keeps
    the leader epochs it cached before a broker restarted until it asks again)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + within
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal() or err.txn_requires_abort() or not _transient(err) or time.monotonic() > deadline:
                raise
            log.info("retrying after a transient error: %s", err.str())
            time.sleep(RETRY_PAUSE_S)
            refresh()


def _transient(err: Any) -> bool:
    from confluent_kafka import KafkaError

    return bool(err.retriable()) or err.code() in (KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH,
                                                   KafkaError.NOT_LEADER_FOR_PARTITION,
                                                   KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
                                                   KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT,
                                                   KafkaError._NOENT)  # "no leaders found": a node just died
