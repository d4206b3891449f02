"""A single-node Apache Kafka (KRaft) broker, or a local multi-node cluster (``LocalCluster``), run from Maven
Central jars with plain ``java``.

Tests, benchmarks and the demo use it; nothing here is needed when a real cluster is configured.

May import: ``pipeline.ports``."""

from pipeline.local_kafka.broker import BrokerStatus, LocalCluster, LocalKafka, LocalKafkaError

__all__ = ["BrokerStatus", "LocalCluster", "LocalKafka", "LocalKafkaError"]
