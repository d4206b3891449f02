"""user_id keys must land on the same partition whoever produces them: the project's confluent-kafka
producers, Faust's client (aiokafka) and Kafka's Java client. Otherwise a user's touchpoints,
conversions and journey table partition would live on different workers."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from confluent_kafka import Producer

from pipeline.kafka import ensure_topics, producer_config
from pipeline.local_kafka import LocalKafka
from pipeline.settings import Settings

KEYS = [f"user-{i:06d}" for i in range(150)] + ["usér-ü-ß", "用户-42", "a", "", "x" * 200]


def _confluent(settings: Settings, config: dict[str, object], topic: str) -> dict[str, int]:
    producer = Producer(config)
    got: dict[str, int] = {}

    def report(err: object, msg: object) -> None:
        assert err is None, err
        got[msg.key().decode()] = msg.partition()  # type: ignore[attr-defined]

    for key in KEYS:
        producer.produce(topic, key=key.encode(), value=b"ck", on_delivery=report)
    assert producer.flush(30) == 0
    return got


def _aiokafka(bootstrap: str, topic: str) -> dict[str, int]:
    from aiokafka import AIOKafkaProducer

    async def run() -> dict[str, int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            return {k: (await producer.send_and_wait(topic, key=k.encode(), value=b"aio")).partition for k in KEYS}
        finally:
            await producer.stop()

    return asyncio.run(run())


def _java(bootstrap: str, topic: str) -> dict[str, int]:
    libs = LocalKafka().ensure_jars()
    source = Path(__file__).parent / "java" / "ProduceKeys.java"
    proc = subprocess.run(
        [LocalKafka.java_executable(), "-cp", f"{libs}/*", str(source), bootstrap, topic, *KEYS],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    return {k: int(p) for k, p in rows}


def test_confluent_aiokafka_and_java_agree_on_every_key(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    topic = kafka_settings.topic_touchpoints
    ours = _confluent(kafka_settings, producer_config(kafka_settings), topic)
    faust_client = _aiokafka(kafka_settings.bootstrap_servers, topic)
    java = _java(kafka_settings.bootstrap_servers, topic)
    assert set(ours) == set(KEYS)
    assert ours == faust_client
    assert ours == java
    assert len(set(ours.values())) == kafka_settings.partitions  # keys spread over every partition


def test_librdkafka_default_partitioner_would_not_co_partition(kafka_settings: Settings) -> None:
    """The control: without the project's partitioner setting, keys land elsewhere."""
    ensure_topics(kafka_settings)
    topic = kafka_settings.topic_conversions
    config = producer_config(kafka_settings)
    del config["partitioner"]
    default = _confluent(kafka_settings, config, topic)
    ours = _confluent(kafka_settings, producer_config(kafka_settings), topic)
    assert sum(default[k] != ours[k] for k in KEYS) > len(KEYS) // 2
