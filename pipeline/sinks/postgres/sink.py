"""The ledger sink: the rewards topic (read_committed) into PostgreSQL, exactly once.

Two threads: one polls and decodes the next batch while the other writes the last one (Python's decoding and
PostgreSQL's statements overlap). Each batch of records is one database transaction that holds the facts and,
per partition, the next offset to consume (``sink_offsets``). On every partition assignment the sink seeks to
the offsets the database holds, not to Kafka's committed ones, as Kafka Connect's JDBC sink does with offsets in
the target: a batch is either in the database with its offsets or not at all, whatever is killed when. Kafka's
committed offsets are written too, after the database's, only so that lag tools see the group's progress.

PostgreSQL unreachable at start: :class:`DatabaseUnreachable` at once. Lost mid-stream: the sink keeps the
batch, logs that it waits, reconnects every ``retry_seconds`` and writes the batch when the server is back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import Any

from pipeline.errors import InvalidEvent
from pipeline.events.avro import AvroCodec
from pipeline.kafka.clients import consumer_config, drain
from pipeline.settings import Settings
from pipeline.sinks.flat_avro import FlatDecoder
from pipeline.sinks.loop import SinkLoop
from pipeline.sinks.postgres import migrations
from pipeline.sinks.postgres.database_url import DatabaseUnreachable, connect, describe, without_secret
from pipeline.sinks.postgres.rows import staged_row
from pipeline.sinks.postgres.write import STAGING, Batch, DeadLetter, stored_offsets, write_batch

log = logging.getLogger("rewardstream.sink.postgres")

# A sink killed without leaving its group holds its partitions until the session times out: short, so that its
# replacement resumes within seconds (the broker's minimum is 6 s).
SESSION_TIMEOUT_MS = 6000
MAX_BATCH = 20_000  # records per transaction: large enough for COPY to pay, small enough to stay fresh
POLL_SECONDS = 0.05  # how long a poll waits for the first record of a batch


class PostgresSink(SinkLoop):
    """Consume ``settings.topic_rewards`` into the database at ``database_url``. ``name`` keys the offsets in
    the database (two sinks of one name share the work; of two names, each writes everything)."""

    def __init__(self, settings: Settings, database_url: str, *, name: str = "ledger", group: str | None = None,
                 max_batch: int = MAX_BATCH, poll_seconds: float = POLL_SECONDS, retry_seconds: float = 1.0) -> None:
        from confluent_kafka import Consumer

        super().__init__(f"postgres-sink-{name}")
        self.settings = settings
        self.url = database_url
        self.name = name
        self.topic = settings.topic_rewards
        self.max_batch = max_batch
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.stats = {"facts": 0, "dead_letters": 0, "batches": 0, "reconnects": 0}
        self._codec = FlatDecoder(AvroCodec("attributed_reward"))
        self._conn: Any = self._connect()  # DatabaseUnreachable here: a clear error at start
        migrations.apply(self._conn)
        self._offsets_conn: Any = None  # the polling thread's, for the offsets read at assignment
        self._batches: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._written: queue.SimpleQueue[dict[int, int]] = queue.SimpleQueue()  # to commit to Kafka, polled
        self._writer = threading.Thread(target=self._write_batches, name=f"postgres-writer-{name}", daemon=True)
        self._consumer = Consumer(consumer_config(settings, group or f"{settings.app_id}-sink-{name}",
                                                 **{"session.timeout.ms": SESSION_TIMEOUT_MS}))
        self._consumer.subscribe([self.topic], on_assign=self._on_assign)

    def start(self) -> PostgresSink:
        self._writer.start()
        return super().start()

    def _close_store(self) -> None:
        if self._writer.is_alive():
            with contextlib.suppress(queue.Empty):  # a batch still queued is dropped: it was never committed
                self._batches.get_nowait()
            self._batches.put(None)
            self._writer.join()
        for conn in (self._conn, self._offsets_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _write_batches(self) -> None:
        while (batch := self._batches.get()) is not None:
            if self._write(batch):
                self._written.put(batch.next_offsets)
            self._batches.task_done()

    # ------------------------------------------------------------------ one batch

    def poll_once(self) -> int:
        """Read what the broker has (up to ``max_batch``) and write it; returns the records handled."""
        self._commit_to_kafka()
        messages = drain(self._consumer, self.max_batch, self.poll_seconds)
        if not messages:
            if self._batches.unfinished_tasks == 0:
                self._note_position()
            return 0
        self.caught_up.clear()
        batch = self._batch(messages)
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                self._batches.put(batch, timeout=0.5)
                return len(messages)
        return 0

    def _batch(self, messages: list[Any]) -> Batch:
        from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

        rows, dead, next_offsets = [], [], {}
        for msg in messages:
            if msg.error():
                log.warning("rewards topic: %s", msg.error())
                continue
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            next_offsets[partition] = offset + 1
            kind, ts = msg.timestamp()
            try:
                if value is None:
                    raise InvalidEvent("<record>", "empty record (a tombstone)")
                rows.append(staged_row(self._codec.decode(value), partition, offset,
                                       ts if kind != TIMESTAMP_NOT_AVAILABLE else int(time.time() * 1000)))
            except (InvalidEvent, KeyError, ValueError, TypeError) as exc:
                dead.append(DeadLetter(partition, offset, f"not an attributed-reward record: {exc}", value))
        return Batch(rows, dead, next_offsets)

    def _write(self, batch: Batch) -> bool:
        """Write until it succeeds (True) or the sink is closed meanwhile (False: nothing was stored)."""
        import psycopg

        waiting_since: float | None = None
        while not self._stopping.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self.stats["reconnects"] += 1
                dead = write_batch(self._conn, self.name, self.topic, batch)
            except (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnreachable) as exc:
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.warning("PostgreSQL at %s is unavailable (%s); the batch waits, retrying every %.1f s",
                                describe(self.url), without_secret(str(exc).strip().splitlines()[0], self.url)
                                if str(exc).strip() else type(exc).__name__, self.retry_seconds)
                self._drop_connection()
                self._stopping.wait(self.retry_seconds)
                continue
            if waiting_since is not None:
                log.warning("PostgreSQL at %s is back after %.1f s; writing resumed", describe(self.url),
                            time.monotonic() - waiting_since)
            for d in dead:
                log.warning("dead letter at %s[%d]@%d: %s", self.topic, d.partition, d.offset, d.reason)
            self.stats["facts"] += len(batch.rows) - (len(dead) - len(batch.dead))
            self.stats["dead_letters"] += len(dead)
            self.stats["batches"] += 1
            return True
        return False

    # ------------------------------------------------------------------ offsets

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Seek every assigned partition to the database's offset (the beginning where it has none)."""
        from confluent_kafka import OFFSET_BEGINNING

        stored = self._stored_offsets()
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)

    def _stored_offsets(self) -> dict[int, int]:
        import psycopg

        while True:
            try:
                if self._offsets_conn is None:
                    self._offsets_conn = connect(self.url, autocommit=True)
                return stored_offsets(self._offsets_conn, self.name, self.topic)
            except (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnreachable) as exc:
                log.warning("PostgreSQL at %s is unavailable while partitions are assigned (%s); retrying",
                            describe(self.url), type(exc).__name__)
                with contextlib.suppress(Exception):
                    self._offsets_conn.close()
                self._offsets_conn = None
                if self._stopping.wait(self.retry_seconds):
                    return {}

    def _commit_to_kafka(self) -> None:
        """Kafka's committed offsets follow the database's (for lag tools only), from the polling thread."""
        from confluent_kafka import KafkaException, TopicPartition

        latest: dict[int, int] = {}
        while True:
            try:
                latest.update(self._written.get_nowait())
            except queue.Empty:
                break
        if latest:
            with contextlib.suppress(KafkaException):
                self._consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in latest.items()],
                                      asynchronous=True)

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Any:
        conn = connect(self.url, autocommit=True)
        # A commit need not wait for its WAL flush: a crash of the server can lose the last transactions, but
        # each holds its own offsets, so the facts and the offsets are lost together and read again.
        conn.execute("SET synchronous_commit = off")
        conn.execute(STAGING)
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
