"""Create the project's topics with one partition count and check that they co-partition."""

from __future__ import annotations

import time
from typing import Any

from pipeline.kafka.clients import admin_client
from pipeline.settings import Settings


class TopicMismatchError(RuntimeError):
    """Input topics disagree on partition count, so user_id keys would not co-partition."""


def project_topics(settings: Settings) -> list[str]:
    return [settings.topic_touchpoints, settings.topic_conversions, settings.topic_rewards,
            settings.topic_dead_letters]


def partition_counts(settings: Settings, topics: list[str], timeout: float = 10.0) -> dict[str, int | None]:
    """Partition count per topic; None where the topic does not exist."""
    md = admin_client(settings).list_topics(timeout=timeout)
    return {t: (len(md.topics[t].partitions) if t in md.topics and md.topics[t].error is None else None)
            for t in topics}


# The broker stamps input records with the time they entered the log: the worker judges future-dated events
# against it, and a producer's clock (which also wrote the event time) would be no independent reference.
INPUT_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    if topic in (settings.topic_touchpoints, settings.topic_conversions):
        return dict(INPUT_TOPIC_CONFIG)
    return {}


def ensure_topics(settings: Settings, topics: list[str] | None = None, timeout: float = 30.0,
                  config: dict[str, str] | None = None) -> dict[str, int]:
    """Create missing topics with ``settings.partitions``; fail if an existing one has another count."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    topics = topics or project_topics(settings)
    existing = partition_counts(settings, topics, timeout)
    missing = [t for t, n in existing.items() if n is None]
    if missing:
        admin: Any = admin_client(settings)
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=settings.partitions, replication_factor=settings.replication_factor,
                      config={**topic_config(settings, t), **(config or {})}) for t in missing],
            operation_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result(timeout)
            except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {topic}: {exc}") from exc
    # Creation is acknowledged before every broker's metadata shows the topic: wait until it does.
    deadline = time.monotonic() + timeout
    counts = partition_counts(settings, topics, timeout)
    while any(n is None for n in counts.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = partition_counts(settings, topics, timeout)
    wrong = {t: n for t, n in counts.items() if n != settings.partitions}
    if wrong:
        raise TopicMismatchError(
            f"topics {wrong} do not have the configured {settings.partitions} partitions; keyed inputs "
            "would not co-partition with the journey table. Recreate them or set REWARDSTREAM_PARTITIONS."
        )
    return {t: int(n) for t, n in counts.items() if n is not None}
