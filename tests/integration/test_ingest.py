"""Conversion feeds into the real broker: a file (JSON Lines, CSV) and the authenticated HTTP endpoint.
Whatever was accepted is on the topic exactly once; whatever was refused is not, with its reason."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.cli.main import main as cli
from pipeline.events.avro import AvroCodec, conversion_from_record
from pipeline.events.types import Conversion
from pipeline.ingest import http_endpoint
from pipeline.ingest.http_endpoint import build_app
from pipeline.kafka import consumer_config, ensure_topics
from pipeline.producers import EventProducer
from pipeline.settings import Settings

T = 1_767_225_600_000


def _read_conversions(settings: Settings, expect: int, timeout: float = 30.0) -> list[Conversion]:
    from confluent_kafka import Consumer

    consumer = Consumer(consumer_config(settings, f"test-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.topic_conversions])
    codec = AvroCodec("conversion")
    out: list[Conversion] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        msgs = [m for m in consumer.consume(1000, 0.5) if not m.error()]
        out.extend(conversion_from_record(codec.decode(m.value())) for m in msgs)
        if msgs:
            quiet_since = time.monotonic()
        elif len(out) >= expect and time.monotonic() - quiet_since > 3:
            break  # 3 s of silence after the expected count: anything extra would have shown up
    consumer.close()
    return out


def _conv(i: int, **over: object) -> dict[str, object]:
    return {"conversion_id": f"c{i}", "user_id": f"u{i}", "event": "purchase", "value": "19.99",
            "currency": "USD", "timestamp": T + i, **over}


def test_file_ingest_sends_good_rows_once_and_reports_bad_ones(kafka_settings: Settings, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_topics(kafka_settings)
    for key, value in (("BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers),
                       ("TOPIC_CONVERSIONS", kafka_settings.topic_conversions)):
        monkeypatch.setenv(f"REWARDSTREAM_{key}", value)
    jsonl = tmp_path / "feed.jsonl"
    good = [_conv(i) for i in range(50)]
    bad = ['{"conversion_id": "x1", "user_id": "u", "event": "purchase", "value": "NaN", "currency": "USD", '
           f'"timestamp": {T}}}',
           '{"conversion_id": "x2", "user_id": "u", "event": "purchase", "value": "5", "currency": "XXX", '
           f'"timestamp": {T}}}',
           "not json at all"]
    lines = [orjson.dumps(g).decode() for g in good[:25]] + bad + [orjson.dumps(g).decode() for g in good[25:]]
    jsonl.write_text("\n".join(lines) + "\n")
    assert cli(["ingest", "conversions", str(jsonl), "--quiet"]) == 0
    rejected = [orjson.loads(x) for x in (tmp_path / "feed.jsonl.rejected.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(26, "value"), (27, "currency"), (28, "<json>")]

    csv = tmp_path / "feed.csv"
    csv.write_text("conversion_id,user_id,event,value,currency,timestamp,refund_of,model\n"
                   f"k1,u1,signup,0,USD,{T},,\n"
                   f"k2,u2,purchase,12.5,EUR,2026-01-01T10:00:00Z,,last_click\n"
                   f"k3,u3,purchase,-4,USD,{T},,\n"
                   f"k4,u1,refund,5.00,USD,{T + 5},c1,\n")
    assert cli(["ingest", "conversions", str(csv), "--quiet"]) == 0
    rejected = [orjson.loads(x) for x in (tmp_path / "feed.csv.rejected.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(4, "value")]

    got = _read_conversions(kafka_settings, expect=53)
    ids = sorted(c.conversion_id for c in got)
    assert ids == sorted([f"c{i}" for i in range(50)] + ["k1", "k2", "k4"])
    k2 = next(c for c in got if c.conversion_id == "k2")
    assert k2.value == Decimal("12.5") and k2.currency == "EUR" and k2.model == "last_click"
    assert next(c for c in got if c.conversion_id == "k4").refund_of == "c1"


async def test_http_ingest_statuses_and_nothing_acknowledged_is_lost(kafka_settings: Settings,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_topics(kafka_settings)
    settings = kafka_settings.with_overrides(ingest_token="s3cret", ingest_max_batch=100)
    producer = EventProducer(settings)
    auth = {"Authorization": "Bearer s3cret"}
    async with TestClient(TestServer(build_app(settings, producer))) as client:
        assert (await client.post("/conversions", json=_conv(0))).status == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post("/conversions", json=_conv(0), headers=wrong)).status == 401

        resp = await client.post("/conversions", json=[_conv(1), _conv(2, currency="ZZZ"), _conv(3, value=-1)],
                                 headers=auth)
        assert resp.status == 400
        errors = (await resp.json())["errors"]
        assert [(e["index"], e["field"]) for e in errors] == [(1, "currency"), (2, "value")]
        json_type = {**auth, "Content-Type": "application/json"}
        assert (await client.post("/conversions", data=b"{oops", headers=json_type)).status == 400
        assert (await client.post("/conversions", data=b'{"a": 1}', headers=auth)).status == 415  # not JSON typed
        assert (await client.post("/conversions", data=orjson.dumps(_conv(4)),
                                  headers={**auth, "Content-Type": "text/csv"})).status == 415

        async def trickle() -> AsyncIterator[bytes]:  # an authenticated client that never finishes its body
            yield b"["
            await asyncio.sleep(3)
            yield orjson.dumps(_conv(5)) + b"]"

        monkeypatch.setattr(http_endpoint, "BODY_TIMEOUT_SECONDS", 0.5)
        assert (await client.post("/conversions", data=trickle(), headers=json_type)).status == 408
        monkeypatch.undo()
        assert (await client.post("/conversions", json=[_conv(i) for i in range(101)], headers=auth)).status == 413

        acknowledged: list[str] = []
        resp = await client.post("/conversions", json=_conv(10), headers={"Authorization": "bearer s3cret"})
        assert resp.status == 202  # the scheme is case-insensitive (RFC 7235)
        acknowledged += (await resp.json())["conversion_ids"]
        resp = await client.post("/conversions", json=[_conv(i) for i in range(20, 100)], headers=auth)
        assert resp.status == 202
        acknowledged += (await resp.json())["conversion_ids"]
        assert (await (await client.get("/health")).json())["accepted"] == 81
    producer.close()
    got = _read_conversions(settings, expect=81)
    assert sorted(c.conversion_id for c in got) == sorted(acknowledged)  # each once; the refused ones absent
