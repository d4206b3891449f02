"""Fuzz targets: one function per decoder that takes bytes from outside, each stating what must hold for any input.

- ``avro``: a record from an input topic (``AvroCodec.decode`` and the record → event mapping the worker runs):
  the event, or ``InvalidEvent`` (``DecodeError`` among them), never another exception; an event read back
  encodes to the same record.
- ``jsonl``: a chunk of JSON Lines as the backfill and ``produce`` read it (``parse_line``): each line an event
  or ``InvalidEvent``, never another exception; an accepted event written back as JSON reads as the same event.
  The native parser is fuzzed in Rust (native/src/fuzz.rs) and against this one by ``engines``.
- ``http``: an ingest request body (``parse_body``): the conversions or a 400/413 refusal, never an exception;
  what it accepts goes to Avro and back unchanged (what a 202 promises reaches the worker as it was sent).
- ``engines``: the differential target. The input drives a generator of event logs (users, ids, times, values,
  duplicates, refunds, out-of-order and garbage lines from a small alphabet, so that they collide), and the
  same log goes through the Python and the native backfill and the Python and native partition processors:
  every output byte, every refusal and the counters must agree.

A failure is an exception out of the target (an ``AssertionError`` for a broken property). ``fuzz/run.py`` runs
them under atheris; ``tests/unit/test_fuzz_corpus.py`` runs them over the corpus kept in ``fuzz/corpus`` and the
crash inputs kept in ``fuzz/crashes`` (each one a regression test).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from pipeline.engine import FILE_QUORUM, EngineConfig
from pipeline.engine.chunks import PythonBackfill
from pipeline.engine.partition import CONVERSIONS, RESERVED_PREFIX, TOUCHPOINTS, InputRecord, journey_codec
from pipeline.engine.partition.processor import PartitionProcessor
from pipeline.errors import InvalidEvent
from pipeline.events.avro import (
    MAGIC,
    AvroCodec,
    conversion_from_record,
    conversion_to_record,
    touchpoint_from_record,
    touchpoint_to_record,
)
from pipeline.events.jsonl import event_to_json
from pipeline.events.parse import parse_line
from pipeline.events.types import Conversion, Event, Touchpoint
from pipeline.ingest.http_endpoint import Refusal, parse_body
from pipeline.money.exact import RatesTable
from pipeline.native import NativeBackfill, NativePartitionProcessor
from pipeline.units import DAY_MS, HOUR_MS

T0 = 1_767_225_600_000
NOW = T0 + 400 * DAY_MS
CODECS = {"touchpoint": AvroCodec("touchpoint"), "conversion": AvroCodec("conversion")}
CONFIG = EngineConfig(window_ms=DAY_MS, windows_ms={"signup": HOUR_MS}, allowed_lateness_ms=HOUR_MS,
                      max_journey_length=5, refund_retention_ms=2 * DAY_MS, max_future_skew_ms=HOUR_MS,
                      rates=RatesTable("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")}))


# ------------------------------------------------------------------------------------------------------- avro

def _event_of(name: str, data: bytes) -> Event:
    record = CODECS[name].decode(data)
    return touchpoint_from_record(record) if name == "touchpoint" else conversion_from_record(record)


def avro(data: bytes) -> None:
    """First byte: which schema, and whether the rest follows that schema's own header (so that most inputs
    reach the body decoder) or is the whole record (header included)."""
    if not data:
        return
    name = "touchpoint" if data[0] & 1 else "conversion"
    codec = CODECS[name]
    raw = data[1:] if data[0] & 2 else MAGIC + codec.schema.fingerprint + data[1:]
    try:
        event = _event_of(name, raw)
    except InvalidEvent:
        return
    record = touchpoint_to_record(event) if isinstance(event, Touchpoint) else conversion_to_record(event)
    assert isinstance(event, Touchpoint if name == "touchpoint" else Conversion)
    assert _event_of(name, codec.encode(record)) == event, event


# ------------------------------------------------------------------------------------------------------ jsonl

def _refusals(refused: list[tuple[int, InvalidEvent, bytes]]) -> list[tuple[int, str, str, str]]:
    return [(n, type(e).__name__, e.field, e.reason) for n, e, _ in refused]


def _backfills(chunk: bytes) -> None:
    py, native = PythonBackfill(CONFIG, None, NOW), NativeBackfill(CONFIG, None, NOW, FILE_QUORUM)
    py_out, py_refused, py_in = py.feed(chunk, 1)
    nat_out, nat_refused, nat_in = native.feed(chunk, 1)
    assert _refusals(nat_refused) == _refusals(py_refused), chunk
    assert (nat_out, nat_in) == (py_out, py_in), chunk
    assert native.finish() == py.finish(), chunk
    assert dataclasses.asdict(native.stats()) == dataclasses.asdict(py.stats()), chunk


def jsonl(data: bytes) -> None:
    for line in data.split(b"\n"):
        try:
            event = parse_line(line)
        except InvalidEvent:
            continue
        assert parse_line(orjson.dumps(event_to_json(event))) == event, line


# ------------------------------------------------------------------------------------------------------- http

def http(data: bytes) -> None:
    parsed = parse_body(data, 100)
    if isinstance(parsed, Refusal):
        assert parsed.status in (400, 413), parsed
        orjson.dumps(parsed.body)  # the answer itself can be written
        return
    codec = CODECS["conversion"]
    for conversion in parsed:
        assert _event_of("conversion", codec.encode(conversion_to_record(conversion))) == conversion, conversion


# ---------------------------------------------------------------------------------------------------- engines

class _Draw:
    """Choices drawn from the input's bytes, one at a time; zeros once they run out."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return options[self.byte() % len(options)]

    def more(self) -> bool:
        return self.at < len(self.data)


_STEPS = (0, 1, 60_000, HOUR_MS // 4, HOUR_MS, 5 * HOUR_MS, DAY_MS, -HOUR_MS // 2, -2 * HOUR_MS)
_VALUES = ("10", "0.01", "19.99", 5, 0, "1000000", 2.5, "-3", "1e3", "0.001")
_GARBAGE = (b"", b"{", b"[]", b"null", b'{"type": "click"}', b"\xff\xfe", b'{"type": "touchpoint"}',
            b'{"type":"conversion","conversion_id":"x","user_id":"u0","event":"purchase","value":1,'
            b'"currency":"USD","timestamp":1767225600000,"timestamp":5}')


def event_log(data: bytes) -> list[bytes]:
    """A log of JSON lines that the bytes choose, from small pools of users, ids and times so that events meet:
    the same touchpoint twice, refunds of conversions seen or not, late and future events, garbage."""
    draw = _Draw(data)
    t = T0
    lines: list[bytes] = []
    sent: list[bytes] = []
    while draw.more() and len(lines) < 60:
        t += draw.pick(_STEPS)
        user = draw.pick(("u0", "u1", "u2", "ü"))
        kind = draw.byte() % 10
        event: dict[str, Any]
        if kind < 5:
            event = {"type": "touchpoint", "touchpoint_id": f"t{draw.byte() % 24}", "episode_id": "e",
                     "user_id": user, "campaign_id": draw.pick(("c0", "c1")),
                     "channel": draw.pick(("search", "display", "email")), "timestamp": t,
                     "immediate_reward": draw.pick((0, 1, 0.5, -2.25))}
        elif kind < 8:
            event = {"type": "conversion", "conversion_id": f"c{draw.byte() % 12}", "user_id": user,
                     "event": draw.pick(("purchase", "signup")), "currency": draw.pick(("USD", "EUR", "JPY")),
                     "value": draw.pick(_VALUES), "timestamp": t}
            if draw.byte() % 4 == 0:
                event["model"] = draw.pick(("linear", "last_click", "time_decay", "position_based", "first_click"))
        elif kind == 8:
            event = {"type": "conversion", "conversion_id": f"r{draw.byte() % 12}", "user_id": user,
                     "event": "refund", "currency": draw.pick(("USD", "EUR")), "value": draw.pick(_VALUES),
                     "refund_of": f"c{draw.byte() % 12}", "timestamp": t}
        elif sent and draw.byte() % 2:
            lines.append(draw.pick(sent))  # a copy of an earlier line
            continue
        else:
            lines.append(draw.pick(_GARBAGE))
            continue
        if draw.byte() % 16 == 0:
            event["timestamp"] = t + 400 * DAY_MS  # far ahead
        line = json.dumps(event).encode()
        sent.append(line)
        lines.append(line)
    return lines


def _records(lines: list[bytes]) -> list[InputRecord]:
    out = []
    for offset, line in enumerate(lines):
        try:
            event = parse_line(line)
        except InvalidEvent:
            continue
        source, record = ((TOUCHPOINTS, touchpoint_to_record(event)) if isinstance(event, Touchpoint)
                          else (CONVERSIONS, conversion_to_record(event)))
        name = "touchpoint" if source == TOUCHPOINTS else "conversion"
        out.append(InputRecord(source, offset, event.user_id.encode(), CODECS[name].encode(record),
                               event.timestamp_ms))
    return out


def _partition(make: Callable[..., Any], records: list[InputRecord]) -> tuple[Any, ...]:
    proc = make(0, CONFIG, None)
    table: dict[bytes, bytes] = {}
    outboxes: dict[bytes, list[bytes]] = {}
    refused = []

    def load(keys: list[bytes]) -> list[bytes | None]:
        return [table.get(k) for k in keys]

    for step in (proc.process(records, load), proc.advance(load, (TOUCHPOINTS, CONVERSIONS), NOW)):
        refused += [(r.record.offset, r.error.field, r.error.reason) for r in step.refused]
        for key, value in step.writes:
            if value is None:
                table.pop(key, None)
                continue
            table[key] = value
            if not key.startswith(RESERVED_PREFIX):
                outboxes.setdefault(key, []).extend(journey_codec.outbox(value))
    state = {k: v if k.startswith(RESERVED_PREFIX) else journey_codec.without_outbox(v) for k, v in table.items()}
    return outboxes, refused, state


def engines(data: bytes) -> None:
    lines = event_log(data)
    _backfills(b"".join(line + b"\n" for line in lines))
    records = _records(lines)
    python = _partition(PartitionProcessor, records)
    native = _partition(NativePartitionProcessor, records)
    assert native[0] == python[0], "the outboxes differ"
    assert native[1] == python[1], "the refusals differ"
    assert _meaning(native[2]) == _meaning(python[2]), "the stored state differs"


def _meaning(table: dict[bytes, bytes]) -> dict[bytes, Any]:
    """A partition's table as what it holds: each engine writes the clock and the journeys in its own bytes."""
    return {k: orjson.loads(v) if k.startswith(RESERVED_PREFIX) else journey_codec.decode_journey(v)
            for k, v in table.items()}


TARGETS: dict[str, Callable[[bytes], None]] = {"avro": avro, "jsonl": jsonl, "http": http, "engines": engines}
