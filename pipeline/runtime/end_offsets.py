"""Fresh end offsets of the inputs, asked without blocking the processing loop.

Idleness (``pipeline.shell.idleness``) needs the broker's own word that an input has nothing more to read, from
a fresh ``ListOffsets`` request, never the last fetch (a broker out of reach leaves a fetch's figure standing).
Each tick collects the answers that are in and, once the previous request is answered (or older than its timeout),
sends the next: a broker out of reach only means no answers, never a stalled loop. An answer that is an error
(a restarted broker refusing the leader epochs the client cached before) makes the client ask for the topics'
metadata again before the next request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("rewardstream.worker")

TopicPartitionKey = tuple[str, int]


class EndOffsets:
    def __init__(self, admin: Any, timeout: float = 5.0) -> None:
        self._admin = admin
        self._timeout = timeout
        self._futures: dict[Any, Any] = {}
        self.requested_at = 0.0  # monotonic time of the request whose answers ``collect`` returns
        self._stale: set[str] = set()  # topics whose answers were errors: their metadata is asked for again

    def collect(self) -> dict[TopicPartitionKey, int]:
        """The answers to the last request that are in; those still out are awaited until its timeout."""
        ends: dict[TopicPartitionKey, int] = {}
        pending = {}
        for tp, future in self._futures.items():
            if not future.done():
                pending[tp] = future
            elif not future.cancelled() and future.exception() is None:
                ends[(tp.topic, tp.partition)] = int(future.result().offset)
            else:
                self._stale.add(tp.topic)
        expired = time.monotonic() - self.requested_at > self._timeout
        self._futures = {} if expired else pending
        return ends

    def request(self, partitions: list[TopicPartitionKey]) -> None:
        """A new request, unless the last one is still out (and within its timeout)."""
        if not partitions or self._futures:
            return
        for topic in sorted(self._stale):
            try:
                self._admin.list_topics(topic, timeout=1)
            except Exception as exc:  # still out of reach: asked again before the next request
                log.debug("metadata of %s not refreshed: %s", topic, exc)
                return
        self._stale.clear()
        from confluent_kafka import IsolationLevel, TopicPartition
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        self.requested_at = time.monotonic()
        try:
            self._futures = self._admin.list_offsets(
                {TopicPartition(t, p): latest for t, p in partitions},
                isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self._timeout)
        except Exception as exc:  # the client refused the request (shutting down): no answers this tick
            log.debug("end offsets not requested: %s", exc)
            self._futures = {}
