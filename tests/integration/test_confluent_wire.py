"""``serialization = "confluent"`` against a real schema registry (the project's local Apicurio Registry) and a
real worker: the project's topics carry the Confluent wire format, and Confluent's own AvroDeserializer, its
SchemaRegistryClient pointed at the registry's Confluent-compatible API, reads the rewards topic."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.worker_cmd import RUNTIMES
from pipeline.events.avro import AvroCodec, default_registry, touchpoint_to_record
from pipeline.kafka.clients import consumer_config
from pipeline.kafka.reward_reader import RewardReader
from pipeline.kafka.schema_registry import (
    IncompatibleSchema,
    RegistryClient,
    RegistrySchemas,
    topic_schemas,
    value_subject,
)
from pipeline.producers import ConversionProducer, EventProducer, TouchpointProducer
from pipeline.settings import Settings
from pipeline.system import DelayedRewardConfig, DelayedRewardSystem
from tests.integration.stream_harness import Worker, make_settings


def _confluent_records(settings: Settings, topic: str, registry_url: str, until: Any, timeout: float
                       ) -> list[dict[str, Any]]:
    """Records of ``topic`` decoded by confluent-kafka's AvroDeserializer, until ``until(records)`` holds."""
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    # The topic strategy, not confluent-kafka 2.16's default, which first asks the registry for the topic's
    # "associations" (nothing this test reads needs them; one such request to Apicurio once went unanswered until
    # the test's timeout), and a bound on every registry request (the client's default is none).
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": 30}),
                                   conf={"subject.name.strategy": topic_subject_name_strategy})
    consumer = Consumer(consumer_config(settings, f"confluent-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            records.append(deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    return records


@pytest.mark.timeout(400)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_rewards_in_the_confluent_wire_format_read_by_confluents_deserializer(
        kafka_settings: Settings, registry_url: str, tmp_path: Path, runtime: str) -> None:
    settings = make_settings(kafka_settings.with_overrides(serialization="confluent", registry_url=registry_url,
                                                           runtime=runtime),
                             f"rs-confluent-{uuid.uuid4().hex[:8]}")
    worker = Worker(settings, None, tmp_path, "w1").start()
    user = f"u-{uuid.uuid4().hex[:8]}"
    try:
        producer = EventProducer(settings)
        tp = TouchpointProducer.build(user_id=user, episode_id="e", campaign_id="c", channel="search",
                                      immediate_reward=1.0)
        producer.send(tp)
        producer.send(ConversionProducer.build(user_id=user, event="purchase", value="25.00"))
        # poison: a single-object record (wrong magic byte), and a Confluent header naming no registered schema
        single_object = AvroCodec("touchpoint").encode(touchpoint_to_record(tp))
        producer.send_raw(settings.topic_touchpoints, user.encode(), single_object)
        producer.send_raw(settings.topic_touchpoints, user.encode(),
                          b"\x00" + struct.pack(">I", 987654321) + single_object[10:])
        producer.close()

        rewards = _confluent_records(settings, settings.topic_rewards, registry_url,
                                     lambda rs: any(r["kind"] == "attribution" for r in rs), 120)
        paid = [r for r in rewards if r["kind"] == "attribution"]
        assert paid, worker.tail()
        assert paid[0]["touchpoint_id"] == tp.touchpoint_id and paid[0]["amount_minor"] == 2500

        dead = _confluent_records(settings, settings.topic_dead_letters, registry_url, lambda rs: len(rs) >= 2, 60)
        reasons = sorted(d["reason"] for d in dead)
        assert any("magic byte 0xc3" in r for r in reasons), reasons
        assert any("unknown schema id 987654321" in r for r in reasons), reasons
        assert all(d["source_topic"] == settings.topic_touchpoints for d in dead)
        assert {bytes(d["value"][:1]) for d in dead} == {b"\xc3", b"\x00"}  # the records as they were written

        reader = RewardReader(settings)  # the project's own reader speaks the same format
        try:
            ours = reader.read(30)
        finally:
            reader.close()
        assert any(r["touchpoint_id"] == tp.touchpoint_id for r in ours)

        async def facade() -> tuple[dict[str, float], str]:  # the design document's API over the same topics
            system = DelayedRewardSystem(DelayedRewardConfig(attribution_timeout_seconds=60,
                                                             use_database_persistence=False), settings)
            try:
                other = f"v-{uuid.uuid4().hex[:8]}"
                tid = await system.store_pending_reward(episode_id="e", user_id=other, campaign_id="c",
                                                        channel="email")
                return await system.trigger_attribution(other, "purchase", "12.50"), tid
            finally:
                system.close()

        split, tid = asyncio.run(facade())
        assert split == {tid: 12.5}
    finally:
        worker.stop()

    client = RegistryClient(registry_url)
    for topic in topic_schemas(settings):
        assert client.versions(value_subject(topic)) == [1]
        status, config = client._call("GET", f"/config/{value_subject(topic)}")
        assert status == 200 and config["compatibilityLevel"] == "BACKWARD"


def test_a_schema_not_backward_compatible_with_the_subject_is_refused(registry_url: str) -> None:
    client = RegistryClient(registry_url)
    topic = f"test.incompatible-{uuid.uuid4().hex[:8]}"
    subject = value_subject(topic)
    old = json.loads(json.dumps(default_registry().current["touchpoint"].raw))
    old["fields"] = [f for f in old["fields"] if f["name"] != "campaign_id"]  # the current one adds it, no default
    client.set_compatibility(subject, "BACKWARD")
    client.register(subject, json.dumps(old))
    with pytest.raises(IncompatibleSchema, match="not BACKWARD compatible"):
        RegistrySchemas(client).register_topics({topic: "touchpoint"})
    assert client.versions(subject) == [1]  # not registered
