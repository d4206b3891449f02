"""The wire format of the records on the project's topics, reframed at the edges.

Inside, everything (both engines, the codecs, the changelog's outboxes) speaks Avro single-object encoding:
``C3 01`` + the writer schema's 8-byte fingerprint + the Avro body (``pipeline.events.avro``). Kafka shops with a
schema registry speak the Confluent wire format instead: ``00`` + the schema's 4-byte big-endian registry id + the
same Avro body. Only the header differs, so a record is moved between the two by swapping headers, through a map
of registry ids to fingerprints; the body is never decoded.

:class:`WireFormat` is the edge's whole interface: ``inbound(value)`` gives single-object bytes of a record as read
from a topic (raising :class:`~pipeline.events.avro.DecodeError`, an ``InvalidEvent``, with the reason: the record
goes to the dead letters), ``outbound(topic, value)`` the bytes to write to ``topic``. The single-object format
passes bytes through untouched. The ids come from a registry (``pipeline.kafka.schema_registry``), behind the
:class:`SchemaIds` protocol, so this module stays free of I/O.
"""

from __future__ import annotations

import struct
from typing import Protocol

from pipeline.events.avro import HEADER_LEN, MAGIC, DecodeError

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_LEN = 5
SINGLE_OBJECT = "single-object"
CONFLUENT = "confluent"
SERIALIZATIONS = (SINGLE_OBJECT, CONFLUENT)

_ID = struct.Struct(">I")


class SchemaIds(Protocol):
    """The registry's ids of the project's schemas, both ways."""

    def fingerprint_of(self, schema_id: int) -> bytes:
        """The single-object fingerprint of the schema the registry stores under ``schema_id``; raises
        DecodeError when the registry has no such id or it is no schema this project knows."""
        ...

    def id_for(self, topic: str, fingerprint: bytes) -> int:
        """The id of the schema with ``fingerprint`` under ``topic``'s value subject (registered on start)."""
        ...


class WireFormat:
    """Single-object encoding on the topics: the bytes are already what the engines read and write."""

    name = SINGLE_OBJECT

    def inbound(self, value: bytes) -> bytes:
        return value

    def outbound(self, topic: str, value: bytes) -> bytes:
        return value

    def outbound_records(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """(key, value) records for ``topic`` with their values framed by :meth:`outbound`."""
        return records


class ConfluentWire(WireFormat):
    """The Confluent wire format on the topics, single-object encoding inside."""

    name = CONFLUENT

    def __init__(self, ids: SchemaIds) -> None:
        self.ids = ids

    def inbound(self, value: bytes) -> bytes:
        if len(value) < CONFLUENT_HEADER_LEN:
            raise DecodeError("<bytes>", f"{len(value)} bytes: too short for the Confluent wire format's 5-byte "
                                         "header")
        if value[0] != CONFLUENT_MAGIC:
            raise DecodeError("<bytes>", f"magic byte 0x{value[0]:02x}, not the Confluent wire format's 0x00")
        (schema_id,) = _ID.unpack_from(value, 1)
        return MAGIC + self.ids.fingerprint_of(schema_id) + value[CONFLUENT_HEADER_LEN:]

    def outbound(self, topic: str, value: bytes) -> bytes:
        if len(value) < HEADER_LEN or value[:2] != MAGIC:
            raise ValueError(f"a record for {topic} is not single-object encoded")
        return bytes((CONFLUENT_MAGIC,)) + _ID.pack(self.ids.id_for(topic, bytes(value[2:HEADER_LEN]))) \
            + value[HEADER_LEN:]

    def outbound_records(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return [(key, self.outbound(topic, value)) for key, value in records]
