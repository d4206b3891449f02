"""Read one partition's records between two offsets, outside any consumer group, and a group's committed
offset: the worker's repair of a hole in what Faust delivered (see ``pipeline.stream.offset_holes``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipeline.kafka.clients import consumer_config
from pipeline.settings import Settings


class OffsetRangeReader:
    """A consumer assigned (never subscribed) to one partition at a time; it commits nothing.

    It reads as Faust's own consumer does (``read_uncommitted``, the at-least-once setting), so that a hole is
    filled with exactly the records Faust would have delivered."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Any = None
        self._group_reader: Any = None

    def read(self, topic: str, partition: int, start: int, end: int, timeout: float = 60.0) -> list[Any]:
        """The records at offsets ``start`` to ``end - 1`` (fewer where the log has none, as after a
        transaction marker). The read ends at the record at ``end`` or at the end of the partition's log."""
        from confluent_kafka import KafkaError, TopicPartition

        if self._consumer is None:
            from confluent_kafka import Consumer

            self._consumer = Consumer(consumer_config(
                self.settings, f"{self.settings.app_id}-hole-reader-{uuid.uuid4().hex[:8]}",
                **{"isolation.level": "read_uncommitted", "enable.partition.eof": True, "fetch.wait.max.ms": 10}))
        consumer = self._consumer
        consumer.assign([TopicPartition(topic, partition, start)])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                for msg in consumer.consume(500, 0.05):
                    if msg.error():
                        if msg.error().code() == KafkaError._PARTITION_EOF and msg.offset() >= start:
                            return out  # the log's end: nothing more of the range exists
                        continue
                    if msg.offset() >= end:
                        return out
                    if msg.offset() >= start:
                        out.append(msg)
            raise TimeoutError(f"{topic}[{partition}]: offsets {start}..{end} not read within {timeout:.0f}s")
        finally:
            consumer.unassign()

    def committed(self, topic: str, partition: int, group: str, timeout: float = 30.0) -> int | None:
        """The offset ``group`` has committed for the partition (None if nothing yet): where a new owner's
        first record must be. Asked by a consumer that never joins the group, so it moves nothing."""
        from confluent_kafka import Consumer, TopicPartition

        if self._group_reader is None:
            self._group_reader = Consumer(consumer_config(self.settings, group))
        (tp,) = self._group_reader.committed([TopicPartition(topic, partition)], timeout=timeout)
        return tp.offset if tp.offset >= 0 else None

    def close(self) -> None:
        for consumer in (self._consumer, self._group_reader):
            if consumer is not None:
                consumer.close()
        self._consumer = self._group_reader = None
