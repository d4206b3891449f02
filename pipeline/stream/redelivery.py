"""Rewards the changelog holds that may not have reached the rewards topic: found at restore, sent again.

A batch's journey writes go to the changelog carrying the rewards they produced (their outbox), and the same
rewards go to the rewards topic directly, in the same step. Kafka cannot make the two topics' records land
together without transactions, so a crash between them can leave a journey change in the changelog whose
rewards never arrived; the restored journey then sees the replayed input as a duplicate and would never pay it.

The worker therefore writes a *delivered mark* into each changelog partition: "every record of this partition
up to offset N also reached the rewards topic". While Faust restores a partition from its changelog (or keeps a
standby replica of it), :class:`Redelivery` watches the records go by and keeps the outboxes of those past the
latest mark. When the partition's processing starts, the worker sends them before anything else. A reward can
so arrive twice, with the same ``reward_id`` (consumers drop repeats), but never not at all.

The local store is applied only after both topics acknowledged a batch, so records a restore skips (at or below
the stored offset) were delivered; only the tail after the last mark is ever sent again.
"""

from __future__ import annotations

from pipeline.engine.partition import RESERVED_PREFIX, journey_codec
from pipeline.engine.partition.journey_codec import Reward


def mark_key(partition: int) -> bytes:
    """The changelog key of a partition's delivered mark (a reserved key: never a user id)."""
    return RESERVED_PREFIX + f"delivered:{partition}".encode()


def mark_value(offset: int) -> bytes:
    return str(offset).encode()


class Redelivery:
    """Per changelog partition, the outboxes seen past its latest delivered mark (offset order)."""

    def __init__(self) -> None:
        self._pending: dict[int, list[tuple[int, list[Reward]]]] = {}
        self._through: dict[int, int] = {}  # partition → the highest offset seen
        self.sent = 0  # rewards handed back to the worker for sending again

    def observe(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One changelog record as restore (or a standby replica) applies it."""
        if offset > self._through.get(partition, -1):
            self._through[partition] = offset
        if key is None or value is None:
            return
        pending = self._pending.setdefault(partition, [])
        if key == mark_key(partition):
            through = int(value)
            pending[:] = [entry for entry in pending if entry[0] > through]
            return
        if key.startswith(RESERVED_PREFIX):
            return
        records = journey_codec.outbox(value)
        if records:
            pending.append((offset, [(key, r) for r in records]))

    def take(self, partition: int) -> tuple[list[Reward], int | None]:
        """The partition's rewards that may be undelivered, oldest first, and the changelog offset through which
        everything is delivered once they are (None: restore saw no record); forgotten once taken."""
        rewards = [r for _, batch in self._pending.pop(partition, []) for r in batch]
        self.sent += len(rewards)
        return rewards, self._through.pop(partition, None)

    def pending(self, partition: int) -> int:
        return sum(len(batch) for _, batch in self._pending.get(partition, []))
