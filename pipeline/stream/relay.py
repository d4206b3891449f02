"""The outbox relay: journey changelog records → attributed-reward events.

Every journey write carries the rewards its change produced, already encoded (``journey_codec``). The relay
reads the changelog in its own consumer group, publishes each record's outbox to the rewards topic (keyed by
user_id, the changelog key, so a user's rewards stay in order), waits for the acknowledgements, then commits.
A crash between publish and commit repeats rewards with the same ``reward_id``; nothing is lost.

It runs as a thread inside every worker process; Kafka spreads the changelog partitions over the workers'
relays. Trouble with the broker (a restart, a rebalance that takes partitions away mid-batch, a commit refused
because the assignment was lost) is not fatal: the relay starts over from the last committed offsets, which
repeats some rewards and loses none. Only after ``give_up_after`` seconds without any progress does it stop
with an error, and the worker, which checks on it every second, then exits non-zero.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.kafka import consumer_config, drain, producer_config
from pipeline.settings import Settings
from pipeline.stream import journey_codec
from pipeline.stream.processor import RESERVED_PREFIX

log = logging.getLogger("rewardstream.relay")


class RelayStuck(RuntimeError):
    """The relay made no progress for too long; the worker must not pretend to be healthy."""


class OutboxRelay(threading.Thread):
    def __init__(self, settings: Settings, changelog_topic: str, batch: int = 10000,
                 give_up_after: float = 600.0) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.settings = settings
        self.changelog_topic = changelog_topic
        self.batch = batch
        self.give_up_after = give_up_after
        self.stopping = threading.Event()
        self.published = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.error: BaseException | None = None  # set when the relay has given up
        self._progress_at = time.monotonic()

    def status(self) -> dict[str, Any]:
        return {"alive": self.is_alive() and self.error is None, "published": self.published,
                "restarts": self.restarts, "last_error": self.last_error,
                "seconds_since_progress": round(time.monotonic() - self._progress_at, 1)}

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._relay()
                return
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - self._progress_at > self.give_up_after:
                    self.error = RelayStuck(f"no progress for {self.give_up_after:.0f} s; last error: "
                                            f"{self.last_error}")
                    log.error("outbox relay gives up: %s", self.error)
                    return
                self.restarts += 1
                log.warning("outbox relay restarts from the last committed offsets after: %s", self.last_error)
                self.stopping.wait(1.0)

    def _relay(self) -> None:
        from confluent_kafka import Consumer, KafkaException, Producer

        consumer = Consumer(consumer_config(self.settings, f"{self.settings.app_id}-relay", **{
            "enable.partition.eof": False, "session.timeout.ms": 12000, "heartbeat.interval.ms": 2000,
            "fetch.wait.max.ms": 100}))
        failures: list[str] = []
        # Only failed deliveries call back (a Python callback per reward competes with the worker's event loop
        # for the GIL); any failure means this batch is not committed and will be relayed again.
        producer = Producer(producer_config(self.settings, **{
            "linger.ms": 1, "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: failures.append(str(err)) if err else None}))
        reserved = RESERVED_PREFIX
        topic = self.settings.topic_rewards
        consumer.subscribe([self.changelog_topic])
        try:
            while not self.stopping.is_set():
                msgs = drain(consumer, self.batch, 0.2)
                if not msgs:
                    self._progress_at = time.monotonic()  # idle is not stuck
                    continue
                sent = 0
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise KafkaException(err)
                        continue  # e.g. the changelog topic is not created yet
                    key, value = msg.key(), msg.value()
                    if value is None or key is None or key.startswith(reserved):
                        continue
                    for record in journey_codec.outbox(value):
                        while True:
                            try:
                                producer.produce(topic, key=key, value=record)
                                break
                            except BufferError:
                                producer.poll(0.01)
                        sent += 1
                while producer.flush(1.0) > 0:
                    if self.stopping.is_set():
                        return
                    if time.monotonic() - self._progress_at > self.give_up_after:
                        raise RelayStuck("rewards not acknowledged")
                if failures:
                    raise RuntimeError(f"rewards not acknowledged ({failures[:3]}); not committing")
                if any(m.error() is None for m in msgs):
                    consumer.commit(asynchronous=True)  # a refused commit only repeats rewards
                self.published += sent
                self._progress_at = time.monotonic()
        finally:
            producer.flush(10)
            try:
                consumer.close()
            except Exception as exc:  # closing after a broker outage may fail; nothing is lost
                log.debug("relay consumer close: %s", exc)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self.join(timeout)
