"""The Confluent wire format at the edges: headers swapped, bodies untouched, bad headers refused with the
reason; the single-object format passes bytes through."""

from __future__ import annotations

import struct

import pytest

from pipeline.events.avro import AvroCodec, DecodeError, touchpoint_to_record
from pipeline.events.types import Touchpoint
from pipeline.events.wire import ConfluentWire, WireFormat


class Ids:
    """``SchemaIds`` over a fixed table (the registry-backed one is tested against a real registry)."""

    def __init__(self, table: dict[tuple[str, bytes], int]) -> None:
        self.table = table

    def fingerprint_of(self, schema_id: int) -> bytes:
        for (_, fp), known in self.table.items():
            if known == schema_id:
                return fp
        raise DecodeError("<schema>", f"unknown schema id {schema_id}")

    def id_for(self, topic: str, fingerprint: bytes) -> int:
        return self.table[(topic, fingerprint)]


def _touchpoint() -> bytes:
    tp = Touchpoint("t1", "e", "u", "c", "search", 1_700_000_000_000, 1.5, None, [0.5, 1.0], {"bid": 2})
    return AvroCodec("touchpoint").encode(touchpoint_to_record(tp))


def test_outbound_then_inbound_gives_the_single_object_bytes_back() -> None:
    value = _touchpoint()
    wire = ConfluentWire(Ids({("tps", value[2:10]): 70000}))
    framed = wire.outbound("tps", value)
    assert framed[:5] == b"\x00" + struct.pack(">I", 70000) and framed[5:] == value[10:]
    assert wire.inbound(framed) == value
    assert wire.outbound_records("tps", [(b"u", value)]) == [(b"u", framed)]


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xc3\x01" + b"\x00" * 12, "magic byte 0xc3"),
    (b"\x00\x00\x01", "too short"),
    (b"\x00" + struct.pack(">I", 5) + b"body", "unknown schema id 5"),
])
def test_inbound_refuses_what_is_not_the_confluent_format_with_the_reason(data: bytes, reason: str) -> None:
    wire = ConfluentWire(Ids({("tps", _touchpoint()[2:10]): 1}))
    with pytest.raises(DecodeError, match=reason):
        wire.inbound(data)


def test_single_object_passes_bytes_through() -> None:
    value = _touchpoint()
    wire = WireFormat()
    assert wire.inbound(value) is value and wire.outbound("tps", value) is value
