"""What one partition's step takes and gives: input records as Kafka delivered them, table writes, refusals.

Runtime-neutral: the Faust runtime, the Kafka runtime, ``backfill --from-kafka`` and both engines (Python and
native) speak these types; none of them knows a Kafka client. The reserved key prefix marks per-partition
metadata (the clock's frontier record, delivery marks) so it never collides with a user id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipeline.errors import InvalidEvent
from pipeline.events.avro import AvroCodec, conversion_from_record, touchpoint_from_record
from pipeline.events.types import Event

# The native engine names sources and keys the same way (native/src/keys.rs); tests/unit/test_native_agrees.py
# holds the two equal.
TOUCHPOINTS = "touchpoints"
CONVERSIONS = "conversions"
SOURCES = (TOUCHPOINTS, CONVERSIONS)
RESERVED_PREFIX = b"\x00"  # keys that are not user ids (per-partition metadata)


def meta_key(partition: int) -> bytes:
    """The key of a partition's frontier record (its clock and watermark)."""
    return RESERVED_PREFIX + f"meta:{partition}".encode()


Write = tuple[bytes, bytes | None]  # (key, value); None deletes
Loader = Callable[[list[bytes]], list[bytes | None]]  # stored values for keys (None where absent)


class InputRecord(NamedTuple):
    """A record of an input topic as Kafka delivered it. A tuple, so that a batch crosses into the native engine
    as it is (its fields read by position)."""

    source: str  # TOUCHPOINTS or CONVERSIONS
    offset: int
    key: bytes | None
    value: bytes | None
    ingest_ms: int | None  # the record's Kafka timestamp

    @classmethod
    def of_message(cls, source: str, msg: Any) -> InputRecord:
        """From a confluent-kafka message (read outside Faust: the backfill from Kafka, a hole's repair); a
        timestamp Kafka does not have, or 0, is none, as on Faust's path."""
        _, ts = msg.timestamp()
        return cls(source, msg.offset(), msg.key(), msg.value(), ts if ts > 0 else None)


class Refusal(NamedTuple):
    record: InputRecord
    error: InvalidEvent


@dataclass
class BatchOutput:
    """The table writes of one step (the partition's frontier first, when it is written), the refusals and the
    rewards."""

    writes: list[Write] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    # the step's rewards as (user key, attributed-reward record), in the order emitted (so each user's in the order
    # of its outbox), whether or not the journey writes also carry them in their outboxes
    reward_records: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def rewards(self) -> int:
        """How many rewards the step produced."""
        return len(self.reward_records)


_CODECS: dict[str, AvroCodec] = {}


def decode_record(record: InputRecord) -> Event:
    """Bytes to a validated event; InvalidEvent (naming the field) for anything else."""
    if record.value is None:
        raise InvalidEvent("<bytes>", "empty record value (tombstone) on an input topic")
    codec = _CODECS.get(record.source)
    if codec is None:
        codec = _CODECS[record.source] = AvroCodec("touchpoint" if record.source == TOUCHPOINTS else "conversion")
    data = codec.decode(record.value)
    event = touchpoint_from_record(data) if record.source == TOUCHPOINTS else conversion_from_record(data)
    if record.key != event.user_id.encode():
        raise InvalidEvent("key", f"record key {record.key!r} is not the user_id {event.user_id!r}: producers "
                                  "must key by user_id or journeys split across workers")
    return event
