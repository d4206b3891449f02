"""Dead-letter records: the refused bytes with where they came from and why.

A refused record's bytes are kept so it can be fixed and replayed, but never more than ``MAX_KEPT_BYTES`` of
its key or value: a record near Kafka's size limit, wrapped with its reason, would exceed it, and a dead letter
that cannot be delivered is a record lost. What was cut is said in the reason.
"""

from __future__ import annotations

from pipeline.errors import InvalidEvent, LateEvent
from pipeline.events.avro import AvroCodec, DecodeError

MAX_KEPT_BYTES = 64 * 1024

_CODEC: AvroCodec | None = None


def _kept(data: bytes | None, what: str, notes: list[str]) -> bytes | None:
    if data is None or len(data) <= MAX_KEPT_BYTES:
        return data
    notes.append(f"{what} truncated to its first {MAX_KEPT_BYTES} of {len(data)} bytes")
    return data[:MAX_KEPT_BYTES]


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                error: InvalidEvent, frontier_ms: int | None) -> bytes:
    global _CODEC
    if _CODEC is None:
        _CODEC = AvroCodec("dead_letter")
    kind = "LateEvent" if isinstance(error, LateEvent) else "DecodeError" if isinstance(error, DecodeError) \
        else "InvalidEvent"
    notes: list[str] = []
    key, value = _kept(key, "key", notes), _kept(value, "value", notes)
    reason = error.reason if not notes else f"{error.reason} ({'; '.join(notes)})"
    return _CODEC.encode({
        "source_topic": topic, "source_partition": partition, "source_offset": offset, "key": key,
        "value": value, "field": error.field[:MAX_KEPT_BYTES], "reason": reason[:MAX_KEPT_BYTES],
        "error_type": kind, "rejected_at_event_time": frontier_ms,
    })
