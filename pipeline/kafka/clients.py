"""confluent-kafka client configuration shared by every producer and consumer of the project."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.settings import Settings

# librdkafka's default partitioner is consistent_random (CRC32); Faust (aiokafka) and the Java client
# use murmur2. Keys must hash the same everywhere or a user's touchpoints, conversions and journey
# table partition end up on different workers. murmur2_random = Java's murmur2 for non-null keys.
CO_PARTITIONING_PARTITIONER = "murmur2_random"


def security_config(settings: Settings) -> dict[str, Any]:
    """SASL/TLS settings in librdkafka's names; empty for PLAINTEXT."""
    cfg: dict[str, Any] = {"security.protocol": settings.security_protocol}
    if settings.security_protocol.upper().startswith("SASL"):
        cfg["sasl.mechanism"] = settings.sasl_mechanism
        cfg["sasl.username"] = settings.sasl_username
        cfg["sasl.password"] = settings.sasl_password
    if settings.ssl_cafile:
        cfg["ssl.ca.location"] = settings.ssl_cafile
    return cfg


def partition_for(key: bytes, partitions: int) -> int:
    """The partition every project client (and Faust, and Java) puts ``key`` on: Java's murmur2."""
    from aiokafka.partitioner import murmur2

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


# librdkafka's own log lines (retries while a fresh broker loads its coordinators, ...) go to Python
# logging under this name instead of straight to stderr.
CLIENT_LOGGER = logging.getLogger("rewardstream.kafka.client")


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Idempotent, murmur2-partitioned producer: no duplicates from retries, co-partitioned with Faust."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "logger": CLIENT_LOGGER,
        "partitioner": CO_PARTITIONING_PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **security_config(settings),
    }
    cfg.update(overrides)
    return cfg


def group_liveness(settings: Settings) -> dict[str, int]:
    """How a group member proves it is alive: the session timeout (``session_timeout_ms``: a member silent this
    long loses its partitions) and a heartbeat every sixth of it, so a few lost heartbeats never cost the session."""
    return {"session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": settings.session_timeout_ms // 6}


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """read_committed so that aborted transactional output is never seen; manual commits by default."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "logger": CLIENT_LOGGER,
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **security_config(settings),
    }
    cfg.update(overrides)
    return cfg


def admin_client(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("rewardstream.kafka.admin")
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers, "logger": quiet,
                              **security_config(settings)}
    return AdminClient(config)


def drain(consumer: Any, max_messages: int, timeout: float) -> list[Any]:
    """Up to ``max_messages`` records, returning as soon as any are there.

    ``Consumer.consume(n, timeout)`` waits for ``n`` records or the whole timeout, so with fewer than ``n``
    available every call costs the full timeout. This waits up to
    ``timeout`` for the first record only, then takes what is already fetched without waiting."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(max_messages - 1, 0)]
