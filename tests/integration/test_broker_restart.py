"""The broker stopped for ``OUTAGE_S`` and started again while events flow (the producer pauses over the
outage, the worker does not): the worker rides it out, the rewards equal the backfill's (nothing lost, nothing
paid twice), and the worker says so in a few lines (``pipeline.shell.outages``), not one per failed attempt.
Both runtimes, side by side through the same outage. A broker of its own, so the other tests' broker never goes
away."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
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
    assert_equal,
    generated_log,
    make_settings,
    replaying,
    run_until_complete,
    wait_for,
    write_config,
)

OUTAGE_S = 24
LINE_BUDGET = 10  # log lines a worker may write from the broker's stop until it has been back 30 s


@pytest.fixture
def own_broker(kafka_settings: Settings) -> tuple[LocalKafka, Settings]:
    broker = LocalKafka(instance=f"restart-{os.getpid()}-{uuid.uuid4().hex[:6]}", port=free_port())
    status, _ = broker.start()
    assert status.bootstrap
    yield broker, kafka_settings.with_overrides(bootstrap_servers=status.bootstrap)  # type: ignore[misc]
    broker.stop(purge=True)


@dataclass
class Side:
    """One runtime's worker, on topics of its own, with its producer and its reader of the rewards."""

    runtime: str
    settings: Settings
    worker: Worker
    reader: RewardReader
    producer: SteadyProducer


@pytest.mark.timeout(900)
def test_broker_restart_loses_and_doubles_nothing(own_broker: tuple[LocalKafka, Settings], tmp_path: Path) -> None:
    """Both runtimes ride out the same outage side by side, each on topics of its own."""
    broker, base = own_broker
    config = write_config(tmp_path / "rewardstream.toml")
    up = threading.Lock()  # held while the broker is away
    lines, expected = generated_log(base, tmp_path, config, users=1500, seed=21)
    sides: list[Side] = []
    try:
        for runtime in RUNTIMES:
            topics = {f"topic_{t}": f"{getattr(base, f'topic_{t}')}.{runtime}"
                      for t in ("touchpoints", "conversions", "rewards", "dead_letters")}
            settings = replaying(make_settings(base.with_overrides(runtime=runtime, **topics),
                                               f"rs-restart-{runtime}-{uuid.uuid4().hex[:8]}"))
            # idle_timeout: the production default (an input must be caught up and silent this long)
            worker = Worker(settings, config, tmp_path, f"w-{runtime}", idle_timeout_seconds=30).start()
            # about 1,000 events/s, before and after the outage
            sides.append(Side(runtime, settings, worker, RewardReader(settings),
                              SteadyProducer(settings, lines, 100, 0.1, up)))
        for side in sides:
            side.producer.start()
        for side in sides:
            wait_for(lambda w=side.worker: (w.stats() or {}).get("events_in", 0) > 0, 120,
                     f"first events ({side.runtime})", side.worker.tail)
        time.sleep(3)
        before = {side.runtime: _lines(side.worker.log) for side in sides}
        with up:
            assert "stopped" in broker.stop()
            time.sleep(OUTAGE_S)
            status, started = broker.start()
        assert started and status.bootstrap == base.bootstrap_servers  # same port: clients reconnect
        time.sleep(30)
        during = {side.runtime: _lines(side.worker.log)[len(before[side.runtime]):] for side in sides}
        metrics = {side.runtime: side.worker.get("/metrics/") for side in sides}
        # nothing lost or doubled first; then what the outage looked like to an operator
        for side in sides:
            side.producer.join(timeout=300)
            assert not side.producer.is_alive() and side.producer.sent == len(lines), side.runtime
        for side in sides:
            got = run_until_complete(side.reader, expected, [side.worker], timeout=480)
            assert_equal(got, expected)
            stats = side.worker.stats()
            assert stats is not None and stats["rejected"] == 0, (side.runtime, stats)
        for side in sides:
            lines_written = during[side.runtime]
            assert len(lines_written) <= LINE_BUDGET, (side.runtime, "\n".join(lines_written))
            assert any("kafka back after" in line for line in lines_written), (side.runtime, "\n".join(lines_written))
            status, body = metrics[side.runtime]
            dependency_lines = [line for line in body.decode().splitlines() if "dependency" in line]
            assert status == 200 and 'rewardstream_dependency_up{dependency="kafka"} 1' in dependency_lines, \
                (side.runtime, dependency_lines)
            assert b'rewardstream_dependency_outages_total{dependency="kafka"} 0' not in body, side.runtime
    finally:
        for side in sides:
            side.reader.close()
            side.worker.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []
