"""The outbox relay: journey changelog records → attributed-reward events.

Every journey write carries the rewards produced by that write (``journey_codec``). The relay reads the
changelog topic in its own consumer group, publishes each record's outbox to the rewards topic (Avro, keyed
by user_id, so a user's rewards stay in order), flushes, then commits. A crash between publish and commit
repeats rewards with the same ``reward_id``; nothing is lost. Runs as a thread inside every worker process;
Kafka spreads the changelog partitions over the workers' relays.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.kafka import consumer_config, producer_config
from pipeline.settings import Settings
from pipeline.stream import journey_codec
from pipeline.stream.processor import RESERVED_PREFIX

log = logging.getLogger("rewardstream.relay")


class OutboxRelay(threading.Thread):
    def __init__(self, settings: Settings, changelog_topic: str, batch: int = 5000) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.settings = settings
        self.changelog_topic = changelog_topic
        self.batch = batch
        self.stopping = threading.Event()
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced by the worker, which exits non-zero
            self.error = exc
            log.exception("outbox relay failed")

    def _run(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        consumer = Consumer(consumer_config(self.settings, f"{self.settings.app_id}-relay",
                                            **{"enable.partition.eof": False, "session.timeout.ms": 12000,
                                               "heartbeat.interval.ms": 2000}))
        # Only failed deliveries call back (a Python callback per reward costs ~20% of the worker's
        # throughput, measured): any failure means this batch is not committed and will be relayed again.
        failures: list[str] = []
        producer = Producer(producer_config(self.settings, **{
            "linger.ms": 10, "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: failures.append(str(err)) if err else None}))
        codec = AvroCodec("attributed_reward")
        consumer.subscribe([self.changelog_topic])
        reserved = RESERVED_PREFIX.encode()
        topic = self.settings.topic_rewards
        try:
            while not self.stopping.is_set():
                msgs = consumer.consume(self.batch, 0.5)
                if not msgs:
                    continue
                sent = 0
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise KafkaException(err)
                        log.debug("relay consumer: %s", err)  # e.g. changelog not created yet
                        continue
                    key, value = msg.key(), msg.value()
                    if value is None or key is None or key.startswith(reserved):
                        continue
                    for reward in journey_codec.decode_outbox(value):
                        self._produce(producer, topic, key, codec.encode(reward_to_record(reward)))
                        sent += 1
                if producer.flush(60) != 0 or failures:
                    raise RuntimeError(f"rewards not acknowledged ({failures[:3]}); not committing")
                if any(m.error() is None for m in msgs):
                    consumer.commit(asynchronous=False)
                self.published += sent
        finally:
            producer.flush(30)
            consumer.close()

    @staticmethod
    def _produce(producer: Any, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                producer.poll(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self.join(timeout)
