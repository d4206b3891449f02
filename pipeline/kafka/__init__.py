"""Thin confluent-kafka adapters: client configuration and topic administration."""

from pipeline.kafka.clients import admin_client, consumer_config, producer_config, security_config
from pipeline.kafka.topics import TopicMismatchError, ensure_topics, partition_counts

__all__ = [
    "TopicMismatchError",
    "admin_client",
    "consumer_config",
    "ensure_topics",
    "partition_counts",
    "producer_config",
    "security_config",
]
