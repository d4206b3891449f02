"""Publish events to the touchpoint and conversion topics from sync or asyncio code.

Avro (single-object encoded, or in the Confluent wire format with ``serialization = "confluent"``), keyed by
user_id with the partitioner that co-partitions with the worker's tables, idempotent (no duplicates from retries),
validated before they leave the process: a bad event is refused at the call with :class:`InvalidEvent`, not
discovered in the dead-letter topic. A background thread serves delivery reports, so neither sync nor async
callers need to poll.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pipeline.events.avro import AvroCodec, conversion_to_record, touchpoint_to_record
from pipeline.events.types import Conversion, Event, Touchpoint
from pipeline.events.validate import validate_event
from pipeline.kafka.clients import producer_config
from pipeline.kafka.schema_registry import wire_format
from pipeline.settings import Settings


class DeliveryError(RuntimeError):
    """The broker did not acknowledge one or more events."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker stored an event."""

    topic: str
    partition: int
    offset: int


_Report = Callable[[Any, Any], None]


class EventProducer:
    """Both event kinds to their topics. Thread-safe; use one per process.

    ``send`` queues and returns at once (failures surface from ``flush``/``close`` and ``failures``);
    ``send_async`` and ``send_and_wait`` return once the broker has acknowledged the event."""

    def __init__(self, settings: Settings, *, validate: bool = True, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.settings = settings
        self.validate = validate
        self._producer = Producer(producer_config(settings, **overrides))
        self._codecs = {Touchpoint: AvroCodec("touchpoint"), Conversion: AvroCodec("conversion")}
        self.wire = wire_format(settings)  # the topics' framing (single-object, or Confluent's with a registry)
        self._lock = threading.Lock()
        self.failures: list[str] = []
        self.delivered = 0
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="rewardstream-producer-poll", daemon=True)
        self._poller.start()

    # ------------------------------------------------------------------ encoding

    def encode(self, event: Event) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of an event, validated first unless the producer was built without."""
        if self.validate:
            event = validate_event(event)
        if isinstance(event, Touchpoint):
            topic, value = self.settings.topic_touchpoints, self._codecs[Touchpoint].encode(touchpoint_to_record(event))
        else:
            topic, value = self.settings.topic_conversions, self._codecs[Conversion].encode(conversion_to_record(event))
        return topic, event.user_id.encode(), self.wire.outbound(topic, value)

    # ------------------------------------------------------------------ sending

    def send(self, event: Event) -> None:
        """Queue one event. No record timestamp: event time travels in the payload (Kafka 4.x refuses
        historical CreateTimes, and time-based retention would drop a replayed log at once)."""
        topic, key, value = self.encode(event)
        self.send_raw(topic, key, value)

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None,
                 on_delivery: _Report | None = None) -> None:
        """Queue pre-encoded bytes (no validation): for forwarding and for tests that need poison records."""
        self._check_open()
        report = on_delivery or self._report
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=report)
                return
            except BufferError:  # local queue full: wait for the poll thread to drain deliveries
                self._producer.poll(0.05)

    async def send_async(self, event: Event) -> Delivered:
        """Queue one event and wait, without blocking the event loop, for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()

        def settle(err: Any, msg: Any) -> None:
            self._report(err, msg)
            loop.call_soon_threadsafe(_settle_future, future, err, msg)

        topic, key, value = self.encode(event)
        self.send_raw(topic, key, value, on_delivery=settle)
        return await future

    def send_and_wait(self, event: Event, timeout: float = 30.0) -> Delivered:
        """Queue one event and block until the broker acknowledged it."""
        done = threading.Event()
        outcome: list[Any] = []

        def settle(err: Any, msg: Any) -> None:
            self._report(err, msg)
            outcome.extend((err, msg))
            done.set()

        topic, key, value = self.encode(event)
        self.send_raw(topic, key, value, on_delivery=settle)
        if not done.wait(timeout):
            raise DeliveryError(f"no acknowledgement within {timeout:g} s")
        err, msg = outcome
        if err is not None:
            raise DeliveryError(str(err))
        return Delivered(msg.topic(), msg.partition(), msg.offset())

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued event; raise :class:`DeliveryError` if any was not acknowledged."""
        left = self._producer.flush(timeout)
        with self._lock:
            failures = list(self.failures)
        if left or failures:
            raise DeliveryError(f"{left} events unacknowledged, {len(failures)} failed: {failures[:3]}")

    def close(self, timeout: float = 60.0) -> None:
        """Flush, then stop the delivery thread. Raises like :meth:`flush` if anything was lost."""
        if self._closed.is_set():
            return
        try:
            self.flush(timeout)
        finally:
            self._closed.set()
            self._poller.join(5)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> EventProducer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise RuntimeError("producer is closed")

    def _report(self, err: Any, _msg: Any) -> None:
        with self._lock:
            if err is not None:
                self.failures.append(str(err))
            else:
                self.delivered += 1

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)


def _settle_future(future: asyncio.Future[Delivered], err: Any, msg: Any) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(DeliveryError(str(err)))
    else:
        future.set_result(Delivered(msg.topic(), msg.partition(), msg.offset()))
