"""Bringing a partition's store up to its changelog's committed end before the partition is processed.

The read is bounded by the changelog partition's *high watermark*, asked with ``read_uncommitted``, and read with
``read_committed``: while a transaction of the partition's previous owner is still open (it was killed and its
transaction has not timed out yet), a ``read_committed`` position cannot pass it, so the restore waits until the
broker decides it — committed records are applied, aborted ones never seen. Bounding by the last stable offset
instead would finish early and miss what that transaction's successors committed (Kafka Streams' EOS restore
takes the same bound, KAFKA-10167).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any

from pipeline.runtime.store import PartitionStore, stored_value

log = logging.getLogger("rewardstream.worker")

RESTORE_BATCH = 10_000  # records applied to the store in one WriteBatch
END_OFFSET_TIMEOUT_S = 10.0  # one ask for a changelog partition's end (asked again with fresh metadata after)


class RestoreStalled(RuntimeError):
    """The changelog could not be read to its end in time (broker out of reach, a transaction never decided)."""


def high_watermark(admin: Any, topic: str, partition: int, timeout: float = END_OFFSET_TIMEOUT_S) -> int:
    """The end of the changelog partition including records of open transactions. No answer within
    ``timeout`` is a ``_TIMED_OUT`` Kafka error, which callers retry with fresh metadata: the request may have
    gone to a leader that has just died."""
    from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]

    tp = TopicPartition(topic, partition)
    futures = admin.list_offsets({tp: latest}, isolation_level=IsolationLevel.READ_UNCOMMITTED,
                                 request_timeout=timeout)
    try:
        return int(futures[tp].result(timeout + 1).offset)
    except concurrent.futures.TimeoutError:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                        f"{topic}[{partition}]: no end offset within {timeout:.0f} s")) from None


def restore(store: PartitionStore, reader: Any, admin: Any, topic: str, timeout: float) -> int:
    """Apply the changelog records after the store's offset, through the high watermark; returns how many.
    ``reader``: an assign-mode ``read_committed`` consumer, left unassigned."""
    from confluent_kafka import KafkaError, TopicPartition

    partition = store.partition
    end = high_watermark(admin, topic, partition)
    start = store.offset() + 1
    if start >= end:
        return 0
    tp = TopicPartition(topic, partition, start)
    reader.assign([tp])
    applied = 0
    pending: dict[bytes, bytes | None] = {}
    last = start - 1
    deadline = time.monotonic() + timeout
    try:
        while True:
            position = reader.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                break
            if time.monotonic() > deadline:
                raise RestoreStalled(f"{topic}[{partition}]: restore reached offset {position} of {end} in "
                                     f"{timeout:.0f} s")
            for msg in reader.consume(RESTORE_BATCH, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RestoreStalled(f"{topic}[{partition}]: {err}")
                key = msg.key()
                if key is None:
                    continue
                pending[key] = stored_value(key, msg.value())
                last = msg.offset()
            if len(pending) >= RESTORE_BATCH:
                store.apply(pending, last)
                applied += len(pending)
                pending = {}
        # everything below the end is applied now, or was a transaction marker or an aborted record
        store.apply(pending, end - 1)
        applied += len(pending)
    finally:
        reader.unassign()
    log.debug("%s[%d]: restored %d records up to offset %d", topic, partition, applied, end)
    return applied
