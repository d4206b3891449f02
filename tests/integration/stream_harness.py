"""Helpers for tests that run real worker processes against the real broker."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.jsonl import reward_to_json
from pipeline.events.parse import parse_event
from pipeline.kafka import consumer_config, drain, ensure_topics
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.stream.worker_process import WorkerProcess
from pipeline.synthetic import write_engine_config


def write_config(path: Path) -> Path:
    """The synthetic logs' settings, with a future skew wide enough for the closing events."""
    return write_engine_config(path, max_future_skew_hours=24 * 60)


def produce_lines(settings: Settings, lines: list[str]) -> int:
    producer = EventProducer(settings)
    n = 0
    for line in lines:
        try:
            producer.send(parse_event(orjson.loads(line)))
            n += 1
        except Exception:
            continue
    producer.close()
    return n


class Worker(WorkerProcess):
    """The tests' worker: the package's worker child process."""


def make_settings(base: Settings, app_id: str) -> Settings:
    s = base.with_overrides(app_id=app_id)
    ensure_topics(s)
    return s


class RewardReader:
    """Reads the rewards topic (read_committed) and keeps every record, duplicates included."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(consumer_config(settings, f"test-reader-{os.getpid()}-{time.monotonic_ns()}"))
        self.consumer.subscribe([settings.topic_rewards])
        self.codec = AvroCodec("attributed_reward")
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in drain(self.consumer, 5000, 0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                reward = reward_from_record(self.codec.decode(value))
                assert msg.key() == reward.user_id.encode(), "rewards are keyed by user_id"
                self.records.append(reward_to_json(reward))

    def close(self) -> None:
        self.consumer.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")
