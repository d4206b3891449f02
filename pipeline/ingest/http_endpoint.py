"""HTTP ingest for conversion feeds that cannot speak Kafka: ``POST /conversions`` with one conversion or a
JSON array of them, ``Authorization: Bearer <token>``.

202 means the broker has acknowledged every conversion in the request (so a client that saw 202 may forget
them); 400 lists each bad conversion's index, field and reason, and nothing of that request is sent; 401
without the right token (the scheme's case does not matter); 408 when the body takes longer than
``BODY_TIMEOUT_SECONDS``; 413 for batches over ``ingest_max_batch``; 415 for a body that is not
``application/json``; 503 when the broker did not acknowledge (the client should retry: conversion ids make a
retried conversion a duplicate the worker drops).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_conversion
from pipeline.events.types import Conversion
from pipeline.http_auth import bearer_ok, require_token
from pipeline.producers import DeliveryError, EventProducer
from pipeline.settings import Settings
from pipeline.shell.outages import DEPENDENCIES, KAFKA

log = logging.getLogger("rewardstream.ingest")

PRODUCER_KEY = web.AppKey("producer", EventProducer)
SETTINGS_KEY = web.AppKey("settings", Settings)
COUNTS_KEY: web.AppKey[dict[str, int]] = web.AppKey("counts", dict)
BODY_TIMEOUT_SECONDS = 30.0  # an authenticated client that sends its body slower than this is cut off (408)


class Refusal(NamedTuple):
    """A request body refused as a whole: the status and the JSON body of the answer."""

    status: int
    body: dict[str, Any]


def parse_body(body: bytes, max_batch: int) -> list[Conversion] | Refusal:
    """The conversions a request body holds (one JSON object or an array of them), or why none of them is
    taken: 400 with every bad conversion's index, field and reason, 413 over ``max_batch``. Pure, so that it can
    be fuzzed on its own: any bytes give one of the two, never an exception."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Refusal(400, {"error": f"body is not JSON: {exc}"})
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > max_batch:
        return Refusal(413, {"error": f"{len(items)} conversions; at most {max_batch} per request"})
    conversions: list[Conversion] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidEvent("<conversion>", f"must be a JSON object, got {type(item).__name__}")
            conversions.append(parse_conversion(item))
        except InvalidEvent as exc:
            errors.append({"index": index, "field": exc.field, "reason": exc.reason})
    if errors:
        return Refusal(400, {"error": "invalid conversions; none of this request was sent", "errors": errors})
    return conversions


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def post_conversions(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    counts = request.app[COUNTS_KEY]
    if not bearer_ok(request.headers.get("Authorization"), settings.ingest_token):
        counts["unauthorized"] += 1
        return _json(401, {"error": "missing or wrong bearer token"})
    if request.content_type != "application/json":
        counts["rejected_requests"] += 1
        return _json(415, {"error": f"content type {request.content_type!r}; send application/json"})
    try:
        body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_SECONDS)
    except TimeoutError:
        counts["rejected_requests"] += 1
        return _json(408, {"error": f"the body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s"})
    parsed = parse_body(body, settings.ingest_max_batch)
    if isinstance(parsed, Refusal):
        if parsed.status == 400:
            counts["rejected_requests"] += 1
        return _json(parsed.status, parsed.body)
    conversions = parsed
    producer = request.app[PRODUCER_KEY]
    asked_at = time.monotonic()
    try:
        await asyncio.gather(*(producer.send_async(c) for c in conversions))
        DEPENDENCIES.up(KAFKA, asked_at)  # acknowledged: the broker answers (after an outage: it is back)
    except DeliveryError as exc:
        log.warning("broker did not acknowledge a request: %s", exc)
        return _json(503, {"error": f"the broker did not acknowledge: {exc}; retry the request"})
    counts["accepted"] += len(conversions)
    return _json(202, {"accepted": len(conversions), "conversion_ids": [c.conversion_id for c in conversions]})


async def health(request: web.Request) -> web.Response:
    counts: dict[str, int] = request.app[COUNTS_KEY]
    return _json(200, {"ok": True, **counts})


def build_app(settings: Settings, producer: EventProducer) -> web.Application:
    require_token(settings.ingest_token, "REWARDSTREAM_INGEST_TOKEN")
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[PRODUCER_KEY] = producer
    app[COUNTS_KEY] = {"accepted": 0, "rejected_requests": 0, "unauthorized": 0}
    app.router.add_post("/conversions", post_conversions)
    app.router.add_get("/health", health)
    return app
