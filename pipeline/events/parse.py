"""JSON objects (JSON Lines input, HTTP bodies) to validated events.

Validation here is context-free: it needs only the event itself. Checks that need state or configuration
(lateness, duplicates, currency rates, known refunds) belong to the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from pipeline.errors import InvalidEvent
from pipeline.events.types import MODEL_NAMES, Conversion, Event, Touchpoint
from pipeline.money.currency import MINOR_UNITS

# The limits of a valid event; the native fast path (native/src/validate.rs) applies the same ones, and
# tests/unit/test_native_agrees.py holds the two equal. Event time must lie in a plausible range; anything else
# is a unit mistake (seconds vs ms) or garbage.
MIN_TIMESTAMP_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIMESTAMP_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_ID_LENGTH = 256
MAX_ABS_REWARD = 1e9
MAX_VALUE = Decimal("1e12")
MAX_JSON_DEPTH = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def parse_timestamp(raw: Any, field: str = "timestamp") -> int:
    """ISO-8601 with a zone, or integer epoch milliseconds, to epoch milliseconds."""
    if isinstance(raw, bool):
        raise InvalidEvent(field, "must be ISO-8601 with a zone or integer epoch milliseconds, got a boolean")
    if isinstance(raw, int):
        ms = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or raw != int(raw):
            raise InvalidEvent(field, f"epoch milliseconds must be an integer, got {raw!r}")
        ms = int(raw)
    elif isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidEvent(field, f"not an ISO-8601 timestamp: {raw!r}") from None
        if dt.tzinfo is None:
            raise InvalidEvent(field, f"ISO-8601 timestamp needs a zone (e.g. 'Z' or '+02:00'): {raw!r}")
        ms = (dt - _EPOCH) // _ONE_MS  # exact integer arithmetic; sub-millisecond digits are floored
    else:
        raise InvalidEvent(field, f"must be ISO-8601 with a zone or epoch milliseconds, got {type(raw).__name__}")
    if not MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS:
        raise InvalidEvent(field, f"{ms} ms is outside 2000-01-01..2100-01-01 (seconds instead of milliseconds?)")
    return ms


def _text(obj: Mapping[str, Any], field: str, required: bool = True) -> str | None:
    raw = obj.get(field)
    if raw is None:
        if required:
            raise InvalidEvent(field, "missing")
        return None
    if not isinstance(raw, str):
        raise InvalidEvent(field, f"must be a string, got {type(raw).__name__}")
    if not raw.strip():
        if required:
            raise InvalidEvent(field, "must not be empty")
        return None
    if len(raw) > MAX_ID_LENGTH:
        raise InvalidEvent(field, f"longer than {MAX_ID_LENGTH} characters")
    return raw


def _req(obj: Mapping[str, Any], field: str) -> str:
    value = _text(obj, field)
    assert value is not None
    return value


def parse_money(raw: Any, currency: str, field: str = "value") -> Decimal:
    """A finite, non-negative amount with no more decimals than the currency's minor unit."""
    if isinstance(raw, bool) or raw is None:
        raise InvalidEvent(field, "missing" if raw is None else "must be a number, got a boolean")
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise InvalidEvent(field, f"must be finite, got {raw!r}")
        raw = repr(raw)  # shortest round-trip text: 19.99 stays 19.99, not 19.989999…
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise InvalidEvent(field, f"not a number: {raw!r}") from None
    else:
        raise InvalidEvent(field, f"must be a number, got {type(raw).__name__}")
    if not value.is_finite():
        raise InvalidEvent(field, f"must be finite, got {raw!r}")
    if value < 0:
        raise InvalidEvent(field, f"must not be negative, got {value}")
    if value > MAX_VALUE:
        raise InvalidEvent(field, f"{value} exceeds the plausible maximum {MAX_VALUE}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MINOR_UNITS[currency] and value != value.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency])):
        raise InvalidEvent(field, f"{value} has more decimals than {currency}'s {MINOR_UNITS[currency]}")
    return value


def parse_currency(raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidEvent("currency", "missing" if raw is None else f"must be a string, got {type(raw).__name__}")
    code = raw.strip().upper()
    if code not in MINOR_UNITS:
        raise InvalidEvent("currency", f"unknown currency {raw!r}")
    return code


def _check_json(value: Any, field: str, depth: int = 0) -> None:
    """``state``/``action`` hold any JSON, but no NaN or infinity (they reach trainers as numbers)."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidEvent(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(field, f"must not contain {value!r}")
    elif isinstance(value, list):
        try:  # the common case, a numeric vector: its sum is finite when every element is (else look closer)
            if math.isfinite(sum(value)) and (depth < MAX_JSON_DEPTH or (value and all(type(x) is float
                                                                                       for x in value))):
                return  # (at the deepest level only a vector of floats ends here: its items are not visited)
        except TypeError:
            pass
        for x in value:
            _check_json(x, field, depth + 1)
    elif isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise InvalidEvent(field, f"object keys must be strings, got {type(k).__name__}")
            _check_json(x, field, depth + 1)
    elif value is not None and not isinstance(value, str | int | bool):
        raise InvalidEvent(field, f"must be JSON, got {type(value).__name__}")


def parse_touchpoint(obj: Mapping[str, Any]) -> Touchpoint:
    reward = obj.get("immediate_reward", 0.0)
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise InvalidEvent("immediate_reward", f"must be a number, got {type(reward).__name__}")
    reward = float(reward)
    if not math.isfinite(reward):
        raise InvalidEvent("immediate_reward", f"must be finite, got {reward!r}")
    if abs(reward) > MAX_ABS_REWARD:
        raise InvalidEvent("immediate_reward", f"|{reward}| exceeds the plausible maximum {MAX_ABS_REWARD:g}")
    state, action = obj.get("state"), obj.get("action")
    _check_json(state, "state")
    _check_json(action, "action")
    return Touchpoint(
        touchpoint_id=_req(obj, "touchpoint_id"),
        episode_id=_req(obj, "episode_id"),
        user_id=_req(obj, "user_id"),
        campaign_id=_req(obj, "campaign_id"),
        channel=_req(obj, "channel"),
        timestamp_ms=parse_timestamp(obj.get("timestamp")),
        immediate_reward=reward,
        creative_type=_text(obj, "creative_type", required=False),
        state=state,
        action=action,
    )


def parse_conversion(obj: Mapping[str, Any]) -> Conversion:
    currency = parse_currency(obj.get("currency"))
    refund_of = _text(obj, "refund_of", required=False)
    raw_value = obj.get("value")
    # A refund may state its amount as negative; it is stored as the positive refunded amount.
    if refund_of is not None and isinstance(raw_value, int | float) and not isinstance(raw_value, bool):
        raw_value = abs(raw_value)
    elif refund_of is not None and isinstance(raw_value, str) and raw_value.strip().startswith("-"):
        raw_value = raw_value.strip()[1:]
    value = parse_money(raw_value, currency)
    model = _text(obj, "model", required=False)
    if model is not None and model not in MODEL_NAMES:
        raise InvalidEvent("model", f"unknown attribution model {model!r}; known: {list(MODEL_NAMES)}")
    event = _req(obj, "event").strip().lower()
    return Conversion(
        conversion_id=_req(obj, "conversion_id"),
        user_id=_req(obj, "user_id"),
        event=event,
        value=value,
        currency=currency,
        timestamp_ms=parse_timestamp(obj.get("timestamp")),
        refund_of=refund_of,
        model=model,
    )


def parse_event(obj: Any) -> Event:
    """Dispatch on ``type``; raises :class:`InvalidEvent` naming the first bad field."""
    if not isinstance(obj, Mapping):
        raise InvalidEvent("<event>", f"must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "touchpoint":
        return parse_touchpoint(obj)
    if kind == "conversion":
        return parse_conversion(obj)
    raise InvalidEvent("type", f"must be 'touchpoint' or 'conversion', got {kind!r}")


def parse_line(line: bytes) -> Event:
    """A line to an event, or InvalidEvent (malformed JSON included) naming the field."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("<json>", f"malformed JSON: {exc}") from None
    return parse_event(obj)
