"""Dead-letter records: the refused bytes with where they came from and why."""

from __future__ import annotations

from pipeline.events.avro import AvroCodec, DecodeError
from pipeline.events.errors import InvalidEvent, LateEvent

_CODEC: AvroCodec | None = None


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                error: InvalidEvent, frontier_ms: int | None) -> bytes:
    global _CODEC
    if _CODEC is None:
        _CODEC = AvroCodec("dead_letter")
    kind = "LateEvent" if isinstance(error, LateEvent) else "DecodeError" if isinstance(error, DecodeError) \
        else "InvalidEvent"
    return _CODEC.encode({
        "source_topic": topic, "source_partition": partition, "source_offset": offset, "key": key,
        "value": value, "field": error.field, "reason": error.reason, "error_type": kind,
        "rejected_at_event_time": frontier_ms,
    })
