"""Thin confluent-kafka adapters: client configuration and topic administration."""

from pipeline.kafka.clients import (
    admin_client,
    consumer_config,
    drain,
    partition_for,
    producer_config,
    security_config,
)
from pipeline.kafka.topics import TopicMismatchError, ensure_topics, partition_counts

__all__ = [
    "TopicMismatchError",
    "admin_client",
    "consumer_config",
    "drain",
    "ensure_topics",
    "partition_counts",
    "partition_for",
    "producer_config",
    "security_config",
]
