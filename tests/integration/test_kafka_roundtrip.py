"""A real broker round trip with the project's client configuration and Avro codec."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Producer

from pipeline.events.avro import AvroCodec, touchpoint_from_record, touchpoint_to_record
from pipeline.events.types import Touchpoint
from pipeline.kafka import consumer_config, ensure_topics, producer_config
from pipeline.kafka.offset_range import OffsetRangeReader
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


def test_offset_range_reader_reads_exactly_the_hole_including_around_transaction_markers(
        kafka_settings: Settings) -> None:
    """The worker's repair of a hole Faust left: offsets start..end-1 of one partition, no group, no commit.
    Transactions put markers into the log, so a hole may hold fewer records than offsets."""
    ensure_topics(kafka_settings)
    topic = kafka_settings.topic_touchpoints
    plain = Producer(producer_config(kafka_settings))
    for i in range(5):
        plain.produce(topic, value=f"p{i}".encode(), partition=2)
    assert plain.flush(30) == 0
    transactional = Producer(producer_config(kafka_settings, **{"transactional.id": f"{topic}-tx"}))
    transactional.init_transactions(30)
    for i in range(2):
        transactional.begin_transaction()
        transactional.produce(topic, value=f"t{i}".encode(), partition=2)
        transactional.commit_transaction(30)  # each commit leaves a marker at the next offset
    for i in range(3):
        plain.produce(topic, value=f"q{i}".encode(), partition=2)
    assert plain.flush(30) == 0

    reader = OffsetRangeReader(kafka_settings)
    try:
        all_records = [(m.offset(), m.value()) for m in _read_all(kafka_settings, topic, 2)]
        assert [v for _, v in all_records] == [b"p0", b"p1", b"p2", b"p3", b"p4", b"t0", b"t1", b"q0", b"q1", b"q2"]
        offsets = [o for o, _ in all_records]
        assert offsets[-1] - offsets[0] + 1 > len(offsets)  # the markers take offsets
        got = reader.read(topic, 2, offsets[1], offsets[8])
        assert [(m.offset(), m.value()) for m in got] == all_records[1:8]
        assert [m.value() for m in reader.read(topic, 2, offsets[3], offsets[4])] == [b"p3"]
        # a hole of markers only (where the broker put them is its business)
        marker = next(i for i in range(len(offsets) - 1) if offsets[i + 1] > offsets[i] + 1)
        assert reader.read(topic, 2, offsets[marker] + 1, offsets[marker + 1]) == []
    finally:
        reader.close()


def _read_all(settings: Settings, topic: str, partition: int) -> list[Any]:
    from confluent_kafka import TopicPartition

    consumer = Consumer(consumer_config(settings, "offset-range-all"))
    consumer.assign([TopicPartition(topic, partition, 0)])
    out: list[Any] = []
    deadline = time.monotonic() + 30
    while len(out) < 10 and time.monotonic() < deadline:
        out += [m for m in consumer.consume(100, 1.0) if not m.error()]
    consumer.close()
    return out
