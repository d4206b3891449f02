"""Shared fixtures. Integration tests talk to a real Kafka broker: ``KAFKA_BOOTSTRAP`` when set
(CI starts one), else the project-managed local broker, started once per session and stopped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from pipeline.settings import Settings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    from pipeline.local_kafka import LocalKafka

    broker = LocalKafka(instance="pytest")
    status, started = broker.start()
    assert status.bootstrap
    yield status.bootstrap
    if started:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Settings:
    """Settings with topic names unique to this test, so tests never read each other's data."""
    tag = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    tag = "".join(c if c.isalnum() or c in "-_." else "-" for c in tag)
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_touchpoints=f"test.{tag}.touchpoints",
        topic_conversions=f"test.{tag}.conversions",
        topic_rewards=f"test.{tag}.rewards",
        topic_dead_letters=f"test.{tag}.dead-letters",
        partitions=8,
        session_timeout_ms=6000,  # the broker's least: a killed worker's partitions move after 6 s, not 12
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def registry_url() -> Iterator[str]:
    """A Confluent-compatible schema registry API: ``REGISTRY_URL`` when set, else the project-managed local
    Apicurio Registry, started once per session and stopped after."""
    env = os.environ.get("REGISTRY_URL")
    if env:
        yield env
        return
    from pipeline.local_registry import LocalRegistry

    registry = LocalRegistry(instance="pytest")
    status, started = registry.start()
    assert status.url
    yield status.url
    if started:
        registry.stop(purge=True)
