"""The broker stopped and started again while events flow: the worker and the producers ride it
out, and the rewards equal the backfill's (nothing lost, nothing paid twice). A broker of its own, so the
other tests' broker never goes away."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeline.local_kafka import LocalKafka
from pipeline.ports import free_port
from pipeline.settings import Settings
from tests.integration.stream_harness import (
    RewardReader,
    Worker,
    make_settings,
    produce_lines,
    wait_for,
    write_config,
)
from tests.integration.test_stream import _assert_equal, _log, _run_until_complete, replaying


@pytest.fixture
def own_broker(kafka_settings: Settings) -> tuple[LocalKafka, Settings]:
    broker = LocalKafka(instance=f"restart-{os.getpid()}-{uuid.uuid4().hex[:6]}", port=free_port())
    status, _ = broker.start()
    assert status.bootstrap
    yield broker, kafka_settings.with_overrides(bootstrap_servers=status.bootstrap)  # type: ignore[misc]
    broker.stop(purge=True)


@pytest.mark.timeout(900)
def test_broker_restart_loses_and_doubles_nothing(own_broker: tuple[LocalKafka, Settings], tmp_path: Path) -> None:
    broker, base = own_broker
    settings = replaying(make_settings(base, f"rs-restart-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines, expected = _log(settings, tmp_path, config, users=1500, seed=21)
    # the production default: an input must be caught up and silent this long, while the broker answers
    worker = Worker(settings, config, tmp_path, "w1", idle_timeout_seconds=30).start()
    reader = RewardReader(settings)
    sent = 0

    def steady() -> None:  # about 1,000 events/s, through the outage (the producer buffers and retries)
        nonlocal sent
        for start in range(0, len(lines), 100):
            sent += produce_lines(settings, lines[start:start + 100])
            time.sleep(0.1)

    producer = threading.Thread(target=steady, daemon=True)
    try:
        producer.start()
        wait_for(lambda: (worker.stats() or {}).get("events_in", 0) > 0, 120, "first events", worker.tail)
        time.sleep(3)
        assert "stopped" in broker.stop()
        time.sleep(15)
        status, started = broker.start()
        assert started and status.bootstrap == settings.bootstrap_servers  # same port: clients reconnect
        producer.join(timeout=300)
        assert not producer.is_alive() and sent == len(lines)
        got = _run_until_complete(reader, expected, [worker], timeout=480)
        _assert_equal(got, expected)
        stats = worker.stats()
        assert stats is not None and stats["rejected"] == 0, stats
    finally:
        reader.close()
        worker.stop()
