"""What a batch sends: journey changelog records, rewards and dead letters, through confluent-kafka.

Faust's own send path (aiokafka, a future per record, a 100-message producer buffer) costs far more per record
than librdkafka's ``produce`` (figures: docs/benchmarks.md, "Figures once quoted in code comments"). A batch's
records are produced at once and awaited together without blocking the event loop; the caller applies the
batch to local state and acknowledges the inputs only after every record was acknowledged (acks=all,
idempotent). Any failed delivery fails the batch.

**The changelog first.** A batch's rewards and dead letters are produced only once every changelog record of the
batch is acknowledged, and batches are released in the order they were sent. A reward on the rewards topic
therefore always has its journey write in the changelog, so a restart never processes its input again as new:
a replay after a crash may take the two input topics in another order than the first run did, and would then
compute different facts under the same reward ids (an unattributed conversion's reason, a re-attribution's
revision). The opposite gap, a changelog write whose rewards never arrived, is closed by the outbox the write
carries (``redelivery``), which sends the same bytes again.

Delivery reports are served on the event loop's thread (``poll(0)`` between awaits), not by a thread of its own
blocking in ``poll``: that thread's callbacks take the GIL from the event loop thousands of times a second, which
slows the worker down (docs/benchmarks.md). Rewards are produced after a ``poll``, never inside a delivery
report.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

from pipeline.kafka import producer_config
from pipeline.settings import Settings


class DeliveryFailed(RuntimeError):
    """Kafka did not take a batch's records; the worker cannot go on without losing or repeating output."""


class Pending:
    """The deliveries of one batch to one topic: how many are outstanding, the changelog offsets reached, the
    failures."""

    __slots__ = ("delivered_count", "errors", "offsets", "outstanding")

    def __init__(self, expected: int) -> None:
        self.outstanding = expected  # counted before the first record is queued
        self.delivered_count = 0
        self.offsets: dict[int, int] = {}  # changelog partition → highest acknowledged offset
        self.errors: list[str] = []

    def delivered(self, err: Any, msg: Any) -> None:
        self.outstanding -= 1
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
            return
        self.delivered_count += 1
        partition, offset = msg.partition(), msg.offset()
        if offset > self.offsets.get(partition, -1):
            self.offsets[partition] = offset


class _Held(NamedTuple):
    """A batch sent whose rewards and dead letters wait for its changelog records."""

    log: Pending
    rewards: Pending
    reward_records: list[tuple[bytes, bytes]]
    dead: Pending
    dead_letters: list[tuple[bytes, bytes]]


class OutputProducer:
    def __init__(self, settings: Settings, changelog_topic: str, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.changelog_topic = changelog_topic
        self.rewards_topic = settings.topic_rewards
        self.dead_letter_topic = settings.topic_dead_letters
        self._producer = Producer(producer_config(settings, **{"linger.ms": 2, **overrides}))
        self._held: deque[_Held] = deque()  # oldest first

    def _produce(self, pending: Pending, topic: str, records: Sequence[tuple[bytes, bytes | None]],
                 partition: int = -1) -> None:
        """Queue records for one topic (``partition`` -1: by key, librdkafka's partitioner). The positional call
        is the cheapest form of ``produce``; this loop runs for every record the worker writes."""
        produce, delivered = self._producer.produce, pending.delivered
        for key, value in records:
            while True:
                try:
                    produce(topic, value, key, partition, delivered)
                    break
                except BufferError:  # librdkafka's local queue is full: let deliveries drain it
                    self._producer.poll(0.005)

    def send(self, changelog: list[tuple[int, list[tuple[bytes, bytes | None]]]], rewards: list[tuple[bytes, bytes]],
             dead_letters: list[tuple[bytes, bytes]]) -> tuple[Pending, Pending, Pending]:
        """Queue a batch: (partition, writes) for the changelog, (user key, record) rewards (partitioned by user,
        so a user's rewards stay in order), (key, value) dead letters. The changelog records go now, the others
        once the changelog has them all (see the module's docstring). Returns the three deliveries, to be
        awaited with :meth:`wait`."""
        log = Pending(sum(len(writes) for _, writes in changelog))
        out, dead = Pending(len(rewards)), Pending(len(dead_letters))
        for partition, writes in changelog:
            self._produce(log, self.changelog_topic, writes, partition)
        self._held.append(_Held(log, out, rewards, dead, dead_letters))
        self._producer.poll(0)
        self._release()
        return log, out, dead

    def _release(self) -> None:
        """Produce the rewards and dead letters of the oldest batches whose changelog records are all
        acknowledged, in the order the batches were sent; a batch whose changelog failed sends nothing."""
        held = self._held
        while held and not held[0].log.outstanding:
            batch = held.popleft()
            if batch.log.errors:
                for pending in (batch.rewards, batch.dead):  # never sent: the batch fails on the changelog's errors
                    pending.outstanding = 0
                continue
            self._produce(batch.rewards, self.rewards_topic, batch.reward_records)
            self._produce(batch.dead, self.dead_letter_topic, batch.dead_letters)

    async def wait(self, *pending: Pending, timeout: float = 600.0) -> None:
        """Until every record of ``pending`` is acknowledged (librdkafka retries through broker restarts for
        up to its message timeout); raises :class:`DeliveryFailed` if any was not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(p.outstanding for p in pending):
            self._producer.poll(0)
            self._release()
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
        self._release()
        self._producer.flush(timeout)
