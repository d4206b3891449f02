"""The Kafka runtime's transaction bookkeeping without a broker: the worker's clients replaced by fakes that
record what they were asked, so what is committed, applied, undone and read again can be checked exactly.

A commit sends each source's next offset with the transaction and applies the step's writes to the local store
only after the broker committed; a failed or abandoned transaction leaves the store as it was, rebuilds the
engine from it and seeks the inputs back to the committed offsets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.engine import EngineConfig
from pipeline.engine.partition import CONVERSIONS, TOUCHPOINTS
from pipeline.events.avro import AvroCodec, conversion_to_record, touchpoint_to_record
from pipeline.events.types import Event, Touchpoint
from pipeline.runtime import worker as worker_module
from pipeline.runtime.merge import PartitionMerge
from pipeline.runtime.store import PartitionStore
from pipeline.runtime.worker import KafkaWorker, OwnedPartition
from pipeline.settings import Settings
from pipeline.units import DAY_MS
from tests.unit.fake_kafka import Message
from tests.unit.helpers import conv, tp

CODECS = {TOUCHPOINTS: AvroCodec("touchpoint"), CONVERSIONS: AvroCodec("conversion")}


class FakeProducer:
    """A transactional producer that records the calls; ``send_offsets`` may hang (until released) or fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.produced: list[tuple[str, bytes | None]] = []
        self.offsets_sent: list[tuple[str, int, int]] = []
        self.hang = False
        self.released = threading.Event()
        self.commit_error: Exception | None = None
        self.abort_error: Exception | None = None
        self._reports: list[tuple[Any, Message]] = []
        self._next_offset: dict[tuple[str, int], int] = {}

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, value: bytes | None, key: bytes, partition: int = -1, on_delivery: Any = None
                ) -> None:
        where = (topic, max(partition, 0))
        offset = self._next_offset.get(where, 0)
        self._next_offset[where] = offset + 1
        self.produced.append((topic, value))
        if on_delivery is not None:
            self._reports.append((on_delivery, Message(topic, offset, key, value, 0, where[1])))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float | None = None) -> int:
        reports, self._reports = self._reports, []
        for callback, msg in reports:
            callback(None, msg)
        return 0

    def send_offsets_to_transaction(self, offsets: list[Any], metadata: Any, timeout: float) -> None:
        self.calls.append("send_offsets")
        if self.hang:
            self.released.wait()
        self.offsets_sent = [(tp.topic, tp.partition, tp.offset) for tp in offsets]

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_error is not None:
            raise self.commit_error

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")
        if self.abort_error is not None:
            raise self.abort_error


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def get_watermark_offsets(self, tp: Any, cached: bool = False) -> tuple[int, int]:
        return 0, 0


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[KafkaWorker]:
    """A worker whose clients are fakes (the real ones it built never connect: nothing is polled), owning
    partition 0 with nothing committed yet."""
    settings = Settings().with_overrides(bootstrap_servers="127.0.0.1:9", datadir=str(tmp_path), runtime="kafka",
                                         engine="python", app_id="unit", web_port=0)
    w = KafkaWorker(settings, EngineConfig(max_future_skew_ms=60 * DAY_MS), None)
    w.producer, w.consumer, w.follower = FakeProducer(), FakeConsumer(), FakeConsumer()
    store = PartitionStore(w.root, 0, settings.rocksdb_cache_mb, settings.rocksdb_write_buffer_mb)
    w.parts[0] = OwnedPartition(0, store, w._engine(0, store), PartitionMerge(50, 30_000),
                                {TOUCHPOINTS: 0, CONVERSIONS: 0})
    yield w
    w.views.close()
    store.close()


def messages(w: KafkaWorker, events: list[tuple[str, int, Event]]) -> list[Message]:
    """(source, offset, event) → the records the two consumers would deliver."""
    out = []
    for source, offset, event in events:
        record = touchpoint_to_record(event) if isinstance(event, Touchpoint) else conversion_to_record(event)
        out.append(Message(w.topic_of[source], offset, event.user_id.encode(), CODECS[source].encode(record),
                           event.timestamp_ms))
    return out


JOURNEY = [(TOUCHPOINTS, 0, tp("t1", 0)), (TOUCHPOINTS, 1, tp("t2", 1)), (CONVERSIONS, 0, conv("c1", 2)),
           (TOUCHPOINTS, 2, tp("t3", 3))]


def stored(w: KafkaWorker) -> dict[bytes, bytes]:
    return dict(w.parts[0].store.items())


def test_a_commit_sends_each_inputs_next_offset_and_applies_the_writes_only_after_the_broker_committed(
        worker: KafkaWorker) -> None:
    producer = worker.producer
    worker._take(messages(worker, JOURNEY))
    assert worker._in_txn and producer.calls == ["begin"]
    assert stored(worker) == {}  # nothing reaches the store before the commit
    rewards = [v for t, v in producer.produced if t == worker.settings.topic_rewards]
    assert rewards, "the conversion was attributed within the transaction"
    worker._commit()
    assert producer.calls == ["begin", "send_offsets", "commit"]
    assert sorted(producer.offsets_sent) == sorted([(worker.topic_of[TOUCHPOINTS], 0, 3),
                                                    (worker.topic_of[CONVERSIONS], 0, 1)])
    part = worker.parts[0]
    assert part.committed == {TOUCHPOINTS: 3, CONVERSIONS: 1}
    assert b"u1" in stored(worker) and not part.overlay
    assert worker.transactions == 1 and worker.aborted == 0


def test_a_held_conversion_is_not_committed_past(worker: KafkaWorker) -> None:
    """A conversion waiting for the touchpoints before it: a crash now must read it again."""
    worker._take(messages(worker, [(TOUCHPOINTS, 0, tp("t1", 0)), (CONVERSIONS, 0, conv("c1", 2))]))
    assert worker.parts[0].merge.held
    worker._commit()
    assert (worker.topic_of[CONVERSIONS], 0, 0) in worker.producer.offsets_sent
    assert worker.parts[0].committed == {TOUCHPOINTS: 1, CONVERSIONS: 0}


def test_a_failed_commit_is_aborted_and_undone_the_inputs_read_again_from_the_committed_offsets(
        worker: KafkaWorker) -> None:
    from confluent_kafka import KafkaError, KafkaException

    worker._take(messages(worker, JOURNEY[:2]))
    worker._commit()
    committed_store = stored(worker)
    worker._take(messages(worker, JOURNEY[2:]))
    abortable = KafkaError(KafkaError._TIMED_OUT, "commit failed", fatal=False, retriable=False,
                           txn_requires_abort=True)
    worker.producer.commit_error = KafkaException(abortable)
    worker._commit()
    part = worker.parts[0]
    assert worker.producer.calls[-2:] == ["commit", "abort"]
    assert worker.aborted == 1 and worker.transactions == 1 and not worker._in_txn
    assert stored(worker) == committed_store and not part.overlay
    assert part.consumed == part.committed == {TOUCHPOINTS: 2, CONVERSIONS: 0}
    assert worker.consumer.seeks[-1] == (worker.topic_of[TOUCHPOINTS], 0, 2)
    assert worker.follower.seeks[-1] == (worker.topic_of[CONVERSIONS], 0, 0)
    # read again, the same records give the same journey as if nothing had failed
    worker.producer.commit_error = None
    worker._take(messages(worker, JOURNEY[2:]))
    worker._commit()
    assert part.committed == {TOUCHPOINTS: 3, CONVERSIONS: 1}


class Stopped(Exception):
    """What ``fatal`` raises in these tests instead of ending the process."""


def _stop(message: str) -> None:
    raise Stopped(message)


def _failing_commit(worker: KafkaWorker, abort_code: int) -> None:
    """A transaction whose commit the broker refuses (abortable) and whose abort then fails with ``abort_code``,
    fatal for this producer (what librdkafka said when the transaction coordinator's node was killed)."""
    from confluent_kafka import KafkaError, KafkaException

    worker._take(messages(worker, JOURNEY[:2]))
    worker._commit()
    worker._take(messages(worker, JOURNEY[2:]))
    worker.producer.commit_error = KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit failed", fatal=False,
                                                             retriable=False, txn_requires_abort=True))
    worker.producer.abort_error = KafkaException(KafkaError(abort_code, "abort failed", fatal=True))


def test_an_abort_the_broker_refuses_starts_a_new_producer_and_undoes_the_transaction(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaError

    replacement = FakeProducer()
    monkeypatch.setattr(worker, "_new_producer", lambda: replacement)
    monkeypatch.setattr(worker_module, "fatal", _stop)
    _failing_commit(worker, KafkaError.INVALID_TXN_STATE)
    committed_store = stored(worker)
    broken = worker.producer
    worker._commit()
    part = worker.parts[0]
    assert worker.producer is replacement and replacement.calls == ["init"]
    assert broken in worker._abandoned and broken.calls[-1] == "abort"  # never called again
    assert worker.aborted == 1 and not worker._in_txn and stored(worker) == committed_store
    assert part.consumed == part.committed == {TOUCHPOINTS: 2, CONVERSIONS: 0}
    worker._take(messages(worker, JOURNEY[2:]))
    worker._commit()
    assert replacement.calls == ["init", "begin", "send_offsets", "commit"]
    assert part.committed == {TOUCHPOINTS: 3, CONVERSIONS: 1}


def test_an_abort_refused_because_another_producer_took_the_id_stops_the_worker(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaError

    monkeypatch.setattr(worker_module, "fatal", _stop)
    monkeypatch.setattr(worker, "_new_producer", lambda: pytest.fail("a new producer would fence the other one"))
    _failing_commit(worker, KafkaError._FENCED)
    with pytest.raises(Stopped, match="has taken over"):
        worker._commit()


def test_a_send_offsets_that_never_returns_gives_the_producer_up_for_a_new_one(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka issue 5511: the call waits for ever for a group coordinator it dropped."""
    monkeypatch.setattr(worker_module, "SEND_OFFSETS_BOUND_S", 0.2)
    replacement = FakeProducer()
    monkeypatch.setattr(worker, "_new_producer", lambda: replacement)
    hung = worker.producer
    hung.hang = True
    worker._take(messages(worker, JOURNEY))
    try:
        worker._commit()
        assert worker.producer is replacement and replacement.calls == ["init"]
        assert hung in worker._abandoned  # kept: its call is still waiting on a thread
        part = worker.parts[0]
        assert stored(worker) == {} and not worker._in_txn and worker.aborted == 1
        assert part.consumed == part.committed == {TOUCHPOINTS: 0, CONVERSIONS: 0}
        assert worker.consumer.seeks[-1] == (worker.topic_of[TOUCHPOINTS], 0, 0)
        # the new producer carries the work read again
        worker._take(messages(worker, JOURNEY))
        worker._commit()
        assert replacement.calls == ["init", "begin", "send_offsets", "commit"]
        assert part.committed == {TOUCHPOINTS: 3, CONVERSIONS: 1} and b"u1" in stored(worker)
    finally:
        hung.released.set()


def test_returning_within_gives_the_result_the_exception_or_says_it_hung() -> None:
    assert worker_module.returning_within(lambda: 7, 1.0) == 7
    with pytest.raises(ZeroDivisionError):
        worker_module.returning_within(lambda: 1 // 0, 1.0)
    never = threading.Event()
    try:
        with pytest.raises(worker_module.CallHung):
            worker_module.returning_within(never.wait, 0.1)
    finally:
        never.set()


def test_a_changelog_end_offset_not_answered_in_time_is_a_timeout_kafka_error_retried_with_fresh_metadata(
        ) -> None:
    """The ask went to a leader that just died: it must not wait for the restore's whole timeout."""
    import concurrent.futures

    from confluent_kafka import KafkaError, KafkaException

    from pipeline.runtime.restore import high_watermark

    class SilentAdmin:
        def list_offsets(self, request: dict[Any, Any], **kwargs: Any) -> dict[Any, concurrent.futures.Future[Any]]:
            return {tp: concurrent.futures.Future() for tp in request}

    with pytest.raises(KafkaException) as caught:
        high_watermark(SilentAdmin(), "changelog", 3, timeout=0.1)
    assert caught.value.args[0].code() == KafkaError._TIMED_OUT
    assert worker_module._transient(caught.value.args[0])


def test_a_partition_store_has_the_block_cache_and_memtable_the_settings_ask_for(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path, 2, 3, 5)
    try:
        assert store._db.property_int_value("rocksdb.block-cache-capacity") == 3 * 1024 * 1024
        options = "\n".join(p.read_text() for p in (tmp_path / "2").glob("OPTIONS-*"))
        assert f"write_buffer_size={5 * 1024 * 1024}\n" in options
    finally:
        store.close()
