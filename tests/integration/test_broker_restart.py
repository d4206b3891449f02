"""The broker stopped for ``OUTAGE_S`` and started again while events flow (the producer pauses over the
outage, the worker does not): the worker rides it out, the rewards equal the backfill's (nothing lost, nothing
paid twice), and the worker says so in a few lines (``pipeline.shell.outages``), not one per failed attempt.
Both runtimes. A broker of its own, so the other tests' broker never goes away."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipeline.cli.worker_cmd import RUNTIMES
from pipeline.local_kafka import LocalKafka
from pipeline.ports import free_port
from pipeline.settings import Settings
from tests.integration.stream_harness import (
    RewardReader,
    SteadyProducer,
    Worker,
    make_settings,
    wait_for,
    write_config,
)
from tests.integration.test_stream import _assert_equal, _log, _run_until_complete, replaying

OUTAGE_S = 24
LINE_BUDGET = 10  # log lines a worker may write from the broker's stop until it has been back 30 s


@pytest.fixture
def own_broker(kafka_settings: Settings) -> tuple[LocalKafka, Settings]:
    broker = LocalKafka(instance=f"restart-{os.getpid()}-{uuid.uuid4().hex[:6]}", port=free_port())
    status, _ = broker.start()
    assert status.bootstrap
    yield broker, kafka_settings.with_overrides(bootstrap_servers=status.bootstrap)  # type: ignore[misc]
    broker.stop(purge=True)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_broker_restart_loses_and_doubles_nothing(own_broker: tuple[LocalKafka, Settings], tmp_path: Path,
                                                  runtime: str) -> None:
    broker, base = own_broker
    settings = replaying(make_settings(base.with_overrides(runtime=runtime), f"rs-restart-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines, expected = _log(settings, tmp_path, config, users=1500, seed=21)
    # the production default: an input must be caught up and silent this long, while the broker answers
    worker = Worker(settings, config, tmp_path, "w1", idle_timeout_seconds=30).start()
    reader = RewardReader(settings)

    up = threading.Lock()  # held while the broker is away
    producer = SteadyProducer(settings, lines, 100, 0.1, up)  # about 1,000 events/s, before and after the outage
    try:
        producer.start()
        wait_for(lambda: (worker.stats() or {}).get("events_in", 0) > 0, 120, "first events", worker.tail)
        time.sleep(3)
        before = _lines(worker.log)
        with up:
            assert "stopped" in broker.stop()
            time.sleep(OUTAGE_S)
            status, started = broker.start()
        assert started and status.bootstrap == settings.bootstrap_servers  # same port: clients reconnect
        time.sleep(30)
        during = _lines(worker.log)[len(before):]
        status, metrics = worker.get("/metrics/")
        # nothing lost or doubled first; then what the outage looked like to an operator
        producer.join(timeout=300)
        assert not producer.is_alive() and producer.sent == len(lines)
        got = _run_until_complete(reader, expected, [worker], timeout=480)
        _assert_equal(got, expected)
        stats = worker.stats()
        assert stats is not None and stats["rejected"] == 0, stats
        assert len(during) <= LINE_BUDGET, "\n".join(during)
        assert any("kafka back after" in line for line in during), "\n".join(during)
        dependency_lines = [line for line in metrics.decode().splitlines() if "dependency" in line]
        assert status == 200 and 'rewardstream_dependency_up{dependency="kafka"} 1' in dependency_lines, \
            dependency_lines
        assert b'rewardstream_dependency_outages_total{dependency="kafka"} 0' not in metrics
    finally:
        reader.close()
        worker.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []
