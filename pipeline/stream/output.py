"""What a batch sends: journey changelog records and dead letters, through confluent-kafka.

Faust's own send path (aiokafka, a future per record, a 100-message producer buffer) cost ~100 µs a record;
librdkafka takes a record for ~1 µs. A batch's records are produced at once and awaited together without
blocking the event loop; the caller applies the batch to local state and lets Faust acknowledge the inputs only
after every record was acknowledged (acks=all, idempotent). Any failed delivery fails the batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.kafka import producer_config
from pipeline.settings import Settings


class DeliveryFailed(RuntimeError):
    """Kafka did not take a batch's records; the worker cannot go on without losing or repeating output."""


class Pending:
    """The deliveries of one batch: how many are outstanding, the changelog offsets reached, the failures."""

    __slots__ = ("errors", "offsets", "outstanding")

    def __init__(self) -> None:
        self.outstanding = 0
        self.offsets: dict[int, int] = {}  # changelog partition → highest acknowledged offset
        self.errors: list[str] = []

    def delivered(self, err: Any, msg: Any) -> None:
        self.outstanding -= 1
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
            return
        partition, offset = msg.partition(), msg.offset()
        if offset > self.offsets.get(partition, -1):
            self.offsets[partition] = offset


class OutputProducer:
    def __init__(self, settings: Settings, changelog_topic: str, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.changelog_topic = changelog_topic
        self.dead_letter_topic = settings.topic_dead_letters
        self._producer = Producer(producer_config(settings, **{"linger.ms": 2, **overrides}))

    def _produce(self, pending: Pending, topic: str, key: bytes, value: bytes | None,
                 partition: int | None = None) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": pending.delivered}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                pending.outstanding += 1
                return
            except BufferError:  # librdkafka's local queue is full: let deliveries drain it
                self._producer.poll(0.005)

    def send(self, changelog: list[tuple[int, list[tuple[bytes, bytes | None]]]],
             dead_letters: list[tuple[bytes, bytes]]) -> tuple[Pending, Pending]:
        """Queue a batch: (partition, writes) for the changelog, (key, value) dead letters. Returns the
        changelog's and the dead letters' deliveries, to be awaited with :meth:`wait`."""
        log, dead = Pending(), Pending()
        for partition, writes in changelog:
            for key, value in writes:
                self._produce(log, self.changelog_topic, key, value, partition)
        for key, value in dead_letters:
            self._produce(dead, self.dead_letter_topic, key, value)
        self._producer.poll(0)
        return log, dead

    async def wait(self, *pending: Pending, timeout: float = 600.0) -> None:
        """Until every record of ``pending`` is acknowledged (librdkafka retries through broker restarts for
        up to its message timeout); raises :class:`DeliveryFailed` if any was not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(p.outstanding for p in pending):
            self._producer.poll(0)
            if not any(p.outstanding for p in pending):
                break
            if loop.time() > deadline:
                raise DeliveryFailed(f"{sum(p.outstanding for p in pending)} records unacknowledged after "
                                     f"{timeout:.0f} s")
            await asyncio.sleep(0.001)
        errors = [e for p in pending for e in p.errors]
        if errors:
            raise DeliveryFailed(f"{len(errors)} records not delivered, e.g. {errors[:3]}")

    def close(self, timeout: float = 30.0) -> None:
        self._producer.flush(timeout)
