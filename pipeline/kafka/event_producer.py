"""Publish validated events to the touchpoint and conversion topics: Avro single-object encoded, keyed by
user_id with the co-partitioning partitioner, idempotent, delivery failures surfaced."""

from __future__ import annotations

from typing import Any

from pipeline.events.avro import AvroCodec, conversion_to_record, touchpoint_to_record
from pipeline.events.types import Event, Touchpoint
from pipeline.kafka.clients import producer_config
from pipeline.settings import Settings


class DeliveryError(RuntimeError):
    """The broker did not acknowledge some events."""


class EventProducer:
    def __init__(self, settings: Settings, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self._producer = Producer(producer_config(settings, **overrides))
        self._tp = AvroCodec("touchpoint")
        self._cv = AvroCodec("conversion")
        self.failures: list[str] = []
        self.delivered = 0

    def _report(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failures.append(str(err))
        else:
            self.delivered += 1

    def send(self, event: Event) -> None:
        """Queue one event. No record timestamp: event time travels in the payload (Kafka 4.x refuses
        historical CreateTimes, and time-based retention would drop a replayed log at once)."""
        if isinstance(event, Touchpoint):
            topic, value = self.settings.topic_touchpoints, self._tp.encode(touchpoint_to_record(event))
        else:
            topic, value = self.settings.topic_conversions, self._cv.encode(conversion_to_record(event))
        self.send_raw(topic, event.user_id.encode(), value)

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._report)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        left = self._producer.flush(timeout)
        if left or self.failures:
            raise DeliveryError(f"{left} events unacknowledged, {len(self.failures)} failed: {self.failures[:3]}")
