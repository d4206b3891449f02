"""Avro single-object encoding of the project's records (the Avro spec's "Single object encoding").

Wire format: ``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint + the Avro
binary body. A reader looks the fingerprint up among the schemas it knows (the current ones in
``schemas/`` and any older versions in ``schemas/history/``) and resolves old writers against the
current reader schema, so producers and workers can be upgraded one at a time.

Logical types (timestamp-millis) are documentation for other readers; this codec reads and writes the
underlying longs, which is what the engine wants and is about twice as fast in fastavro.
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_conversion, parse_touchpoint
from pipeline.events.types import AttributedReward, Conversion, RewardKind, Touchpoint
from pipeline.money.exact import from_minor, to_minor

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
SCHEMA_NAMES = ("touchpoint", "conversion", "attributed_reward", "dead_letter")


class DecodeError(InvalidEvent):
    """Bytes that are not a record this codec can read (bad header, unknown schema, corrupt body)."""


def _crc64_table() -> list[int]:
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint of a schema's Parsing Canonical Form."""
    fp = 0xC15D213AA4D7A795
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    return schema


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes


def make_version(name: str, raw: dict[str, Any]) -> SchemaVersion:
    canonical = to_parsing_canonical_form(fastavro.parse_schema(raw))
    fp = struct.pack("<Q", crc64_avro(canonical.encode()))
    parsed = fastavro.parse_schema(_strip_logical(raw), _write_hint=False)
    return SchemaVersion(name, raw, parsed, fp)


def _read_schema_file(path: Any) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


class SchemaRegistry:
    """Schemas known to this process, by fingerprint; one current (reader) version per record name."""

    def __init__(self) -> None:
        self.current: dict[str, SchemaVersion] = {}
        self.by_fingerprint: dict[bytes, SchemaVersion] = {}

    def add(self, version: SchemaVersion, current: bool = False) -> None:
        self.by_fingerprint[version.fingerprint] = version
        if current:
            self.current[version.name] = version

    @classmethod
    def from_package(cls) -> SchemaRegistry:
        reg = cls()
        root = resources.files("pipeline.events").joinpath("schemas")
        for name in SCHEMA_NAMES:
            reg.add(make_version(name, _read_schema_file(root.joinpath(f"{name}.avsc"))), current=True)
        history = root.joinpath("history")
        if history.is_dir():
            for entry in sorted(history.iterdir(), key=lambda p: p.name):
                if entry.name.endswith(".avsc"):
                    reg.add(make_version(entry.name.split(".")[0], _read_schema_file(entry)))
        return reg


@cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry.from_package()


class AvroCodec:
    """Encode/decode one record type (dicts) with single-object framing and schema resolution."""

    def __init__(self, name: str, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self.name = name
        self.schema = self.registry.current[name]
        self._header = MAGIC + self.schema.fingerprint
        self._writer = fastavro.schemaless_writer
        self._reader = fastavro.schemaless_reader

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        self._writer(buf, self.schema.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("<bytes>", "not Avro single-object encoded (missing C3 01 header)")
        fp = bytes(data[2:HEADER_LEN])
        writer = self.registry.by_fingerprint.get(fp)
        if writer is None:
            raise DecodeError("<schema>", f"unknown writer schema fingerprint {fp.hex()}")
        if writer.name != self.name:
            raise DecodeError("<schema>", f"record is a {writer.name}, expected a {self.name}")
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            if writer is self.schema:
                record = self._reader(buf, writer.parsed, None)
            else:
                record = self._reader(buf, writer.parsed, self.schema.parsed)
        except Exception as exc:  # fastavro raises assorted errors on corrupt input
            raise DecodeError("<bytes>", f"corrupt Avro body: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise DecodeError("<bytes>", f"{len(data) - buf.tell()} trailing bytes after the record")
        assert isinstance(record, dict)
        return record


# ---------------------------------------------------------------- event <-> record mapping

def _pack_json(value: Any) -> list[float] | str | None:
    """Numeric vectors stay numeric arrays; any other JSON value travels as JSON text."""
    if value is None:
        return None
    if (isinstance(value, list) and value
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
            and all(math.isfinite(x) for x in value)):
        return [float(x) for x in value]
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _unpack_json(value: Any, field: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise InvalidEvent(field, f"not valid JSON: {exc}") from None
    return value


def touchpoint_to_record(tp: Touchpoint) -> dict[str, Any]:
    try:
        state, action = _pack_json(tp.state), _pack_json(tp.action)
    except ValueError as exc:
        raise InvalidEvent("state/action", f"not JSON-serialisable: {exc}") from None
    return {
        "touchpoint_id": tp.touchpoint_id, "episode_id": tp.episode_id, "user_id": tp.user_id,
        "campaign_id": tp.campaign_id, "channel": tp.channel, "creative_type": tp.creative_type,
        "timestamp": tp.timestamp_ms, "immediate_reward": tp.immediate_reward, "state": state, "action": action,
    }


def touchpoint_from_record(r: dict[str, Any]) -> Touchpoint:
    """Inverse of touchpoint_to_record; validated like JSON input, since bytes on a topic can come from
    anywhere (one validator for every entry)."""
    return parse_touchpoint({**r, "state": _unpack_json(r.get("state"), "state"),
                             "action": _unpack_json(r.get("action"), "action")})


def conversion_to_record(c: Conversion) -> dict[str, Any]:
    return {
        "conversion_id": c.conversion_id, "user_id": c.user_id, "event": c.event,
        "value_minor": to_minor(c.value, c.currency), "currency": c.currency, "timestamp": c.timestamp_ms,
        "refund_of": c.refund_of, "model": c.model,
    }


def conversion_from_record(r: dict[str, Any]) -> Conversion:
    """Inverse of conversion_to_record; re-validates, since bytes on a topic can come from anywhere."""
    currency = r["currency"]
    try:
        value = from_minor(r["value_minor"], currency)
    except KeyError:
        raise InvalidEvent("currency", f"unknown currency {currency!r}") from None
    return parse_conversion({**r, "value": str(value), "type": "conversion"})


def reward_to_record(a: AttributedReward) -> dict[str, Any]:
    return {
        "kind": str(a.kind), "touchpoint_id": a.touchpoint_id, "episode_id": a.episode_id, "user_id": a.user_id,
        "campaign_id": a.campaign_id, "channel": a.channel, "revision": a.revision,
        "amount_minor": a.amount_minor, "base_currency": a.base_currency, "original_reward": a.original_reward,
        "touch_time": a.touch_time_ms, "conversion_id": a.conversion_id, "model": a.model, "currency": a.currency,
        "local_amount_minor": a.local_amount_minor, "conversion_value_minor": a.conversion_value_minor,
        "conversion_time": a.conversion_time_ms, "position": a.position, "journey_length": a.journey_length,
        "event": a.event, "reason": a.reason,
    }


def reward_from_record(r: dict[str, Any]) -> AttributedReward:
    return AttributedReward(
        kind=RewardKind(r["kind"]), touchpoint_id=r["touchpoint_id"], episode_id=r["episode_id"],
        user_id=r["user_id"], campaign_id=r["campaign_id"], channel=r["channel"], revision=r["revision"],
        amount_minor=r["amount_minor"], base_currency=r["base_currency"], original_reward=r["original_reward"],
        touch_time_ms=r["touch_time"], conversion_id=r.get("conversion_id"), model=r.get("model"),
        currency=r.get("currency"), local_amount_minor=r.get("local_amount_minor"),
        conversion_value_minor=r.get("conversion_value_minor"), conversion_time_ms=r.get("conversion_time"),
        position=r.get("position"), journey_length=r.get("journey_length"), event=r.get("event"),
        reason=r.get("reason"),
    )
