"""Thin confluent-kafka adapters: client configuration and topic administration; the schema registry's REST
client and the wire format of the topics (``schema_registry.wire_format``); ``framed_inputs``, the partition
engine wrapper that reframes input records for the engines (imports ``pipeline.engine.partition``, below the
runtimes that use it).

May import: ``pipeline.engine``, ``pipeline.errors``, ``pipeline.events``, ``pipeline.settings``."""

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
