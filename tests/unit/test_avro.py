"""Avro single-object encoding: round trips, fingerprints, schema evolution, corrupt input."""

from __future__ import annotations

import copy
from decimal import Decimal

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.events.avro import (
    AvroCodec,
    DecodeError,
    SchemaRegistry,
    conversion_from_record,
    conversion_to_record,
    crc64_avro,
    default_registry,
    make_version,
    reward_from_record,
    reward_to_record,
    touchpoint_from_record,
    touchpoint_to_record,
)
from pipeline.events.types import AttributedReward, Conversion, RewardKind, Touchpoint

TP = Touchpoint("t1", "e1", "u1", "c1", "search", 1767225600000, 1.5, "video", [0.5, 1.0], {"bid": [1, "x"]})


def test_crc64_avro_matches_the_spec_vector_and_fastavro() -> None:
    assert crc64_avro(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"
    for version in default_registry().current.values():
        canonical = to_parsing_canonical_form(fastavro.parse_schema(version.raw))
        assert fingerprint(canonical, "CRC-64-AVRO") == version.fingerprint.hex()


def test_touchpoint_round_trip_keeps_numeric_vectors_numeric() -> None:
    codec = AvroCodec("touchpoint")
    data = codec.encode(touchpoint_to_record(TP))
    assert data[:2] == b"\xc3\x01" and data[2:10] == codec.schema.fingerprint
    back = touchpoint_from_record(codec.decode(data))
    assert back == TP
    assert back.state == [0.5, 1.0]


def test_conversion_and_reward_round_trip() -> None:
    conv = Conversion("c1", "u1", "purchase", Decimal("1.234"), "BHD", 1767225600000, refund_of="c0",
                      model="linear")
    codec = AvroCodec("conversion")
    assert conversion_from_record(codec.decode(codec.encode(conversion_to_record(conv)))) == conv
    reward = AttributedReward(RewardKind.CORRECTION, "t1", "e1", "u1", "c1", "search", 2, -1234, "USD", 0.0,
                              1767225600000, "c1", "time_decay", "BHD", -411, 1234, 1767229200000, 0, 3,
                              "purchase")
    rc = AvroCodec("attributed_reward")
    assert reward_from_record(rc.decode(rc.encode(reward_to_record(reward)))) == reward


def test_old_writer_new_reader() -> None:
    """A producer still on an older touchpoint schema (no creative_type, state, action) is read by the
    current worker: the fields added since get their defaults."""
    current = default_registry().current["touchpoint"]
    old_raw = copy.deepcopy(current.raw)
    old_raw["fields"] = [f for f in old_raw["fields"] if f["name"] not in {"creative_type", "state", "action"}]
    old = make_version("touchpoint", old_raw)
    assert old.fingerprint != current.fingerprint
    registry = SchemaRegistry()
    registry.add(current, current=True)
    registry.add(old)
    writer = SchemaRegistry()
    writer.add(old, current=True)
    record = {k: v for k, v in touchpoint_to_record(TP).items() if k not in {"creative_type", "state", "action"}}
    data = AvroCodec("touchpoint", writer).encode(record)
    decoded = AvroCodec("touchpoint", registry).decode(data)
    assert decoded["creative_type"] is None and decoded["state"] is None and decoded["touchpoint_id"] == "t1"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b"garbage", "<bytes>"),
        (lambda b: b[:2] + b"\x00" * 8 + b[10:], "<schema>"),
        (lambda b: b[:14], "<bytes>"),
        (lambda b: b + b"\x00", "<bytes>"),
    ],
)
def test_corrupt_input_is_a_decode_error_naming_what_is_wrong(mutate: object, field: str) -> None:
    codec = AvroCodec("touchpoint")
    data = mutate(codec.encode(touchpoint_to_record(TP)))  # type: ignore[operator]
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.field == field


def test_a_record_of_another_type_is_refused() -> None:
    data = AvroCodec("touchpoint").encode(touchpoint_to_record(TP))
    with pytest.raises(DecodeError, match="expected a conversion"):
        AvroCodec("conversion").decode(data)


def test_every_schema_field_is_documented_and_namespaced() -> None:
    for version in default_registry().current.values():
        assert version.raw["namespace"].startswith("io.rewardstream")
        assert version.raw.get("doc")
        for f in version.raw["fields"]:
            assert f.get("doc"), f"{version.name}.{f['name']} has no doc"
