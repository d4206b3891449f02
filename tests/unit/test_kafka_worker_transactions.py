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
    """Records its seeks; hands out ``fetched`` (one by ``poll``, the rest by ``consume``), running ``during``
    inside ``consume`` as librdkafka runs a rebalance callback inside the call that fetches a batch."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        self.fetched: list[Message] = []
        self.during: Any = None

    def poll(self, timeout: float) -> Message | None:
        return self.fetched.pop(0) if self.fetched else None

    def consume(self, n: int, timeout: float) -> list[Message]:
        if self.during is not None:
            self.during()
        out, self.fetched = self.fetched[:n], self.fetched[n:]
        return out

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


def _timed_out(worker: KafkaWorker) -> None:
    """The open transaction began longer ago than its timeout."""
    worker._txn_started -= worker_module.TRANSACTION_TIMEOUT_MS / 1000 + 1


def test_an_abort_refused_as_fenced_after_the_transactions_timeout_starts_a_new_producer(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker aborted the timed-out transaction and bumped the producer's epoch; librdkafka calls that fenced
    (seen in the cluster test when a killed node held the transaction's records past the timeout)."""
    from confluent_kafka import KafkaError

    replacement = FakeProducer()
    monkeypatch.setattr(worker, "_new_producer", lambda: replacement)
    monkeypatch.setattr(worker_module, "fatal", _stop)
    _failing_commit(worker, KafkaError._FENCED)
    committed_store = stored(worker)
    _timed_out(worker)
    worker._commit()
    assert worker.producer is replacement and replacement.calls == ["init"]
    assert worker.aborted == 1 and not worker._in_txn and stored(worker) == committed_store
    assert worker.parts[0].consumed == worker.parts[0].committed == {TOUCHPOINTS: 2, CONVERSIONS: 0}


def test_a_commit_refused_as_fenced_after_the_transactions_timeout_starts_a_new_producer_without_an_abort(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaError, KafkaException

    replacement = FakeProducer()
    monkeypatch.setattr(worker, "_new_producer", lambda: replacement)
    monkeypatch.setattr(worker_module, "fatal", _stop)
    worker._take(messages(worker, JOURNEY))
    fenced = worker.producer
    fenced.commit_error = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    _timed_out(worker)
    worker._commit()
    assert "abort" not in fenced.calls and fenced in worker._abandoned
    assert worker.producer is replacement and worker.aborted == 1 and stored(worker) == {}
    worker._take(messages(worker, JOURNEY))
    worker._commit()
    assert replacement.calls == ["init", "begin", "send_offsets", "commit"] and b"u1" in stored(worker)


def test_a_commit_refused_as_fenced_within_the_transactions_timeout_stops_the_worker(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only another producer with this transactional id can have fenced a young transaction."""
    from confluent_kafka import KafkaError, KafkaException

    monkeypatch.setattr(worker_module, "fatal", _stop)
    monkeypatch.setattr(worker, "_new_producer", lambda: pytest.fail("a new producer would fence the other one"))
    worker._take(messages(worker, JOURNEY))
    worker.producer.commit_error = KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    with pytest.raises(Stopped, match="has taken over"):
        worker._commit()


def test_records_fetched_across_an_undo_are_not_taken_and_the_inputs_are_sought_back(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebalance callback inside the fetch undoes the open transaction (partitions lost): the records fetched
    before it are ahead of the rewound position and must come again, after the ones the rewind reads again."""
    monkeypatch.setattr(worker_module, "fatal", _stop)
    worker._take(messages(worker, JOURNEY[:2]))
    worker._commit()
    worker._take(messages(worker, JOURNEY[2:]))  # open: conversion 0 and touchpoint 2
    later = messages(worker, [(TOUCHPOINTS, 3, tp("t4", 4)), (TOUCHPOINTS, 4, tp("t5", 5))])
    worker.consumer.fetched = list(later)
    worker.consumer.during = worker._abort  # what _on_lost does with an open transaction
    assert worker._fetch(100) == []
    part = worker.parts[0]
    assert part.consumed == part.committed == {TOUCHPOINTS: 2, CONVERSIONS: 0}
    assert worker.consumer.seeks[-1] == (worker.topic_of[TOUCHPOINTS], 0, 2)
    assert worker.follower.seeks[-1] == (worker.topic_of[CONVERSIONS], 0, 0)
    # without a move in between, what is fetched is taken
    worker.consumer.during = None
    worker.consumer.fetched = list(later)
    assert [m.offset() for m in worker._fetch(100)] == [3, 4]


def test_records_fetched_before_a_take_up_are_not_taken_and_kept_partitions_are_sought_to_their_next_record(
        worker: KafkaWorker) -> None:
    """A partition taken up inside the fetch: records of its previous ownership may be in the batch. A partition
    kept all along is sought to the first record it has not taken, so nothing of it is lost."""
    worker._take(messages(worker, JOURNEY[:2]))  # partition 0 has taken touchpoints 0 and 1, uncommitted

    def take_up() -> None:
        worker._moves += 1  # what _on_assign does after its incremental_assign

    worker.consumer.fetched = messages(worker, [(TOUCHPOINTS, 2, tp("t3", 3))])
    worker.consumer.during = take_up
    assert worker._fetch(100) == []
    assert worker.consumer.seeks[-1] == (worker.topic_of[TOUCHPOINTS], 0, 2)
    assert worker.follower.seeks[-1] == (worker.topic_of[CONVERSIONS], 0, 0)


def test_a_commit_that_moves_a_partitions_offsets_writes_its_input_mark_into_the_changelog_and_the_store(
        worker: KafkaWorker) -> None:
    from pipeline.runtime.input_marks import input_mark_key

    worker._take(messages(worker, JOURNEY))
    worker._commit()
    mark = b'{"touchpoints":3,"conversions":1}'
    assert (worker.changelog, mark) in worker.producer.produced  # in the transaction with the offsets
    assert stored(worker)[input_mark_key(0)] == mark
    produced = len(worker.producer.produced)
    worker._begin()  # a transaction that reads nothing (a tick's finals): the offsets stay, no mark
    worker._commit()
    assert len(worker.producer.produced) == produced


def _restore_giving(marks: list[bytes | None]) -> Any:
    """A stand-in for ``restore`` whose n-th call leaves the store with the n-th input mark."""
    from pipeline.runtime.input_marks import input_mark_key

    calls = iter(enumerate(marks))

    def fake(store: PartitionStore, *args: Any) -> int:
        n, mark = next(calls)
        if mark is not None:
            store.apply({input_mark_key(store.partition): mark, b"u9": b"x"}, 10 * (n + 1))
        return n + 1

    return fake


def test_a_store_restored_behind_its_committed_offsets_is_wiped_and_restored_again(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.runtime.input_marks import input_mark_key

    monkeypatch.setattr(worker_module, "RETRY_PAUSE_S", 0)
    monkeypatch.setattr(worker, "_refresh_metadata", lambda: None)
    monkeypatch.setattr(worker_module, "restore", _restore_giving(
        [b'{"touchpoints":5,"conversions":1}', b'{"touchpoints":7,"conversions":2}']))
    store, restored = worker._restored(3, {TOUCHPOINTS: 7, CONVERSIONS: 2})
    try:
        assert restored == 2 and store.offset() == 20  # the second restore's, into a wiped store
        assert store.get(input_mark_key(3)) == b'{"touchpoints":7,"conversions":2}'
    finally:
        store.close()


def test_a_store_without_a_mark_is_taken_as_it_is_and_one_always_behind_stops_the_take_up(
        worker: KafkaWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mark: a changelog the Faust runtime wrote. Always behind: committed state is missing, or the offsets
    were moved by hand; processing on would lose those inputs' effect."""
    from pipeline.runtime.restore import RestoreStalled

    monkeypatch.setattr(worker_module, "RETRY_PAUSE_S", 0)
    monkeypatch.setattr(worker, "_refresh_metadata", lambda: None)
    monkeypatch.setattr(worker_module, "restore", _restore_giving([None]))
    store, _ = worker._restored(3, {TOUCHPOINTS: 7, CONVERSIONS: 2})
    store.destroy()
    behind = b'{"touchpoints":7,"conversions":1}'
    monkeypatch.setattr(worker_module, "restore", _restore_giving([behind] * worker_module.RESTORE_ATTEMPTS))
    with pytest.raises(RestoreStalled, match=r"sources \['conversions'\]"):
        worker._restored(3, {TOUCHPOINTS: 7, CONVERSIONS: 2})
