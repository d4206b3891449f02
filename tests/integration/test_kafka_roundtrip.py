"""A real broker round trip with the project's client configuration and Avro codec."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer

from pipeline.events.avro import AvroCodec, touchpoint_from_record, touchpoint_to_record
from pipeline.events.types import Touchpoint
from pipeline.kafka import consumer_config, ensure_topics, producer_config
from pipeline.settings import Settings


def test_produce_and_consume_touchpoints(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    codec = AvroCodec("touchpoint")
    sent = [Touchpoint(f"t{i}", "e", f"user-{i % 37}", "c", "search", 1767225600000 + i, 0.5, None, [i, 1.5], None)
            for i in range(500)]
    producer = Producer(producer_config(kafka_settings))
    errors: list[object] = []
    for tp in sent:
        producer.produce(kafka_settings.topic_touchpoints, key=tp.user_id.encode(),
                         value=codec.encode(touchpoint_to_record(tp)),
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(consumer_config(kafka_settings, "roundtrip"))
    consumer.subscribe([kafka_settings.topic_touchpoints])
    got: dict[str, Touchpoint] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        tp = touchpoint_from_record(codec.decode(msg.value()))
        assert msg.key() == tp.user_id.encode()
        got[tp.touchpoint_id] = tp
    consumer.close()
    assert got == {tp.touchpoint_id: tp for tp in sent}
