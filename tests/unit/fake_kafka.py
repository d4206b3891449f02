"""Stand-ins for confluent-kafka's objects in tests that run a client's callers without a broker."""

from __future__ import annotations


class Message:
    """What ``Consumer.consume`` returns for one record, and what a delivery report carries."""

    def __init__(self, topic: str, offset: int, key: bytes, value: bytes | None, ts: int, partition: int = 0
                 ) -> None:
        self._topic, self._offset, self._key, self._value, self._ts = topic, offset, key, value, ts
        self._partition = partition

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return 2, self._ts  # log-append time

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value
