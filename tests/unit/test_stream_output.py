"""The Faust runtime's output: a batch's rewards and dead letters go out only once its changelog records are all
acknowledged, batches in the order they were sent (``pipeline.stream.output``). A fake librdkafka producer
acknowledges what the test says, when it says."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

from pipeline.stream.output import DeliveryFailed, OutputProducer
from tests.unit.fake_kafka import Message


class FakeProducer:
    """Keeps what was produced; ``ack`` delivers it (or fails it), the way ``poll`` would call back."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None, bytes, int]] = []
        self._callbacks: list[Any] = []
        self._offsets: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: bytes | None, key: bytes, partition: int, on_delivery: Any) -> None:
        self.produced.append((topic, value, key, partition))
        self._callbacks.append(on_delivery)

    def ack(self, index: int, error: str | None = None) -> None:
        topic, value, key, partition = self.produced[index]
        offset = self._offsets.get((topic, partition), -1) + 1
        self._offsets[(topic, partition)] = offset
        self._callbacks[index](error, Message(topic, offset, key, value, 0, max(partition, 0)))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0

    def topics(self) -> list[str]:
        return [p[0] for p in self.produced]


def _output() -> tuple[OutputProducer, FakeProducer]:
    out = OutputProducer.__new__(OutputProducer)
    fake = FakeProducer()
    out.changelog_topic, out.rewards_topic, out.dead_letter_topic = "log", "rewards", "dead"
    out._producer = fake
    out._held = deque()
    return out, fake


def test_rewards_wait_for_every_changelog_record_of_their_batch() -> None:
    out, fake = _output()
    log, rewards, dead = out.send([(0, [(b"u1", b"j1")]), (1, [(b"u2", b"j2")])], [(b"u1", b"r1")], [(b"k", b"d")])
    assert fake.topics() == ["log", "log"]
    fake.ack(0)
    out._release()
    assert fake.topics() == ["log", "log"]  # one changelog record still outstanding
    fake.ack(1)
    out._release()
    assert fake.topics() == ["log", "log", "rewards", "dead"]
    fake.ack(2)
    fake.ack(3)
    asyncio.run(out.wait(log, rewards, dead))
    assert log.offsets == {0: 0, 1: 0} and rewards.delivered_count == 1 and dead.delivered_count == 1


def test_batches_release_their_rewards_in_the_order_they_were_sent() -> None:
    out, fake = _output()
    out.send([(0, [(b"u1", b"j1")])], [(b"u1", b"first")], [])
    out.send([(1, [(b"u2", b"j2")])], [(b"u1", b"second")], [])
    fake.ack(1)  # the second batch's changelog record is acknowledged first
    out._release()
    assert fake.topics() == ["log", "log"]
    fake.ack(0)
    out._release()
    assert [p[1] for p in fake.produced if p[0] == "rewards"] == [b"first", b"second"]


def test_a_batch_without_changelog_records_sends_at_once() -> None:
    out, fake = _output()
    out.send([], [(b"u1", b"resent")], [])
    assert fake.topics() == ["rewards"]


def test_a_failed_changelog_record_sends_no_reward_and_fails_the_batch() -> None:
    out, fake = _output()
    log, rewards, dead = out.send([(0, [(b"u1", b"j1")])], [(b"u1", b"r1")], [(b"k", b"d")])
    fake.ack(0, error="broker said no")
    with pytest.raises(DeliveryFailed, match="broker said no"):
        asyncio.run(out.wait(log, rewards, dead))
    assert fake.topics() == ["log"]
