"""The HTTP ingest under load from another process on loopback while its broker is stopped and started again:
every request answered 202 is on the topic, once (a 503, or an answer that waited the outage out, is fine; a
lost 202 is not). The throughput figure is bench/bench_ingest.py's; this test only counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.bench_ingest import IngestServer, load_through_restart, topic_ids
from pipeline.kafka import ensure_topics
from pipeline.local_kafka import LocalKafka
from pipeline.settings import Settings
from tests.integration.test_broker_restart import own_broker

__all__ = ["own_broker"]  # the fixture: a broker of this test's own, since it is stopped mid-test


@pytest.mark.timeout(600)
def test_no_202_is_lost_while_the_broker_restarts(own_broker: tuple[LocalKafka, Settings], tmp_path: Path) -> None:
    broker, settings = own_broker
    ensure_topics(settings)
    with IngestServer(settings, tmp_path / "ingest.log") as server:
        load = asyncio.run(load_through_restart(broker, server.url, concurrency=4, before_s=2.0, down_s=5.0,
                                                after_s=2.0))
        on_topic = topic_ids(settings, set(load.accepted), timeout=120)
    assert load.statuses[202] > 100, load.statuses
    assert set(load.statuses) <= {202, 503}, load.statuses  # every request answered, and only so
    lost = [i for i in load.accepted if i not in on_topic]
    assert lost == [], f"{len(lost)} of {len(load.accepted)} acknowledged conversions are not on the topic"
    assert [i for i in load.accepted if on_topic[i] > 1] == []  # the idempotent producer's retries double nothing
    log = (tmp_path / "ingest.log").read_text()  # the outage as an operator reads it: when it began and ended
    assert "kafka unreachable" in log and "kafka back after" in log, log[-3000:]
