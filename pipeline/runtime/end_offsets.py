"""Fresh end offsets of the inputs, asked without blocking the processing loop.

Idleness (``pipeline.shell.idleness``) needs the broker's own word that an input has nothing more to read, from
a fresh ``ListOffsets`` request, never the last fetch (a broker out of reach leaves a fetch's figure standing).
Each tick collects the answers to the previous tick's request and sends the next: a broker out of reach only
means no answers, never a stalled loop.
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

    def collect(self) -> dict[TopicPartitionKey, int]:
        """The answers to the last request that are in (those still out are dropped: a new request follows)."""
        ends: dict[TopicPartitionKey, int] = {}
        for tp, future in self._futures.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                ends[(tp.topic, tp.partition)] = int(future.result().offset)
        self._futures = {}
        return ends

    def request(self, partitions: list[TopicPartitionKey]) -> None:
        if not partitions:
            return
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
