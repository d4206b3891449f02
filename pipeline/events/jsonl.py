"""The JSON Lines form of events and attributed rewards: what backfill writes and `consume` will write,
so that a stream run and a backfill run of one log compare line for line."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.events.parse import parse_timestamp
from pipeline.events.types import AttributedReward, Conversion, Event, RewardKind, Touchpoint
from pipeline.money.currency import MINOR_UNITS

_SECOND_CACHE: dict[int, str] = {}


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with millisecond precision (…T12:00:00.250Z).

    The formatted second is cached: rewards come in bursts from the same instants, and datetime
    formatting would otherwise dominate the backfill's output cost."""
    sec, milli = divmod(ms, 1000)
    prefix = _SECOND_CACHE.get(sec)
    if prefix is None:
        if len(_SECOND_CACHE) > 65536:
            _SECOND_CACHE.clear()
        prefix = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND_CACHE[sec] = prefix
    return f"{prefix}.{milli:03d}Z"


def parse_iso_ms(text: str) -> int:
    """Inverse of :func:`iso_ms` (…T12:00:00.250Z → epoch ms); any other ISO-8601 form through datetime. The
    canonical form is parsed by arithmetic: reading rewards back (fit, reports) does it hundreds of thousands
    of times, and ``datetime.fromisoformat`` is the slow part there."""
    if len(text) == 24 and text[23] == "Z" and text[19] == "." and text[10] == "T":
        y, m, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        # days from 1970-01-01 (Howard Hinnant's days_from_civil)
        y -= m <= 2
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
        days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
        return (((days * 24 + int(text[11:13])) * 60 + int(text[14:16])) * 60 + int(text[17:19])) * 1000 \
            + int(text[20:23])
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


_POW10 = [10**k for k in range(8)]


def money(minor: int, currency: str) -> int | float:
    """Minor units as a JSON number that prints the exact decimal: a correctly rounded n / 10^k is the
    double nearest that decimal, whose shortest repr is the decimal itself (for |n| < 2^53)."""
    exp = MINOR_UNITS[currency]
    return minor if exp == 0 else minor / _POW10[exp]


def reward_to_json(r: AttributedReward) -> dict[str, Any]:
    currency = r.currency
    return {
        "kind": r.kind.value,
        "reward_id": r.reward_id,
        "conversion_id": r.conversion_id,
        "touchpoint_id": r.touchpoint_id,
        "episode_id": r.episode_id,
        "user_id": r.user_id,
        "campaign_id": r.campaign_id,
        "channel": r.channel,
        "model": r.model,
        "event": r.event,
        "revision": r.revision,
        "amount": money(r.amount_minor, r.base_currency),
        "amount_minor": r.amount_minor,
        "base_currency": r.base_currency,
        "currency": currency,
        "local_amount": money(r.local_amount_minor, currency) if r.local_amount_minor is not None and currency
        else None,
        "conversion_value": money(r.conversion_value_minor, currency)
        if r.conversion_value_minor is not None and currency else None,
        "original_reward": r.original_reward,
        "touch_time": iso_ms(r.touch_time_ms),
        "conversion_time": iso_ms(r.conversion_time_ms) if r.conversion_time_ms is not None else None,
        "delay_seconds": r.delay_seconds,
        "position": r.position,
        "journey_length": r.journey_length,
        "reason": r.reason,
    }


def reward_from_json(d: dict[str, Any]) -> AttributedReward:
    currency = d.get("currency")
    local = d.get("local_amount")
    value = d.get("conversion_value")
    return AttributedReward(
        kind=RewardKind(d["kind"]), touchpoint_id=d["touchpoint_id"], episode_id=d["episode_id"],
        user_id=d["user_id"], campaign_id=d["campaign_id"], channel=d["channel"], revision=int(d["revision"]),
        amount_minor=int(d["amount_minor"]), base_currency=d["base_currency"],
        original_reward=float(d["original_reward"]), touch_time_ms=parse_timestamp(d["touch_time"], "touch_time"),
        conversion_id=d.get("conversion_id"), model=d.get("model"), currency=currency,
        local_amount_minor=(int(Decimal(str(local)).scaleb(_exp(currency))) if local is not None and currency
                            else None),
        conversion_value_minor=(int(Decimal(str(value)).scaleb(_exp(currency))) if value is not None and currency
                                else None),
        conversion_time_ms=(parse_timestamp(d["conversion_time"], "conversion_time")
                            if d.get("conversion_time") else None),
        position=d.get("position"), journey_length=d.get("journey_length"), event=d.get("event"),
        reason=d.get("reason"),
    )


def _exp(currency: str) -> int:
    return MINOR_UNITS[currency]


def event_to_json(ev: Event) -> dict[str, Any]:
    """The input format (inverse of parse_event), used by generators and `produce`."""
    if isinstance(ev, Touchpoint):
        out: dict[str, Any] = {
            "type": "touchpoint", "touchpoint_id": ev.touchpoint_id, "episode_id": ev.episode_id,
            "user_id": ev.user_id, "campaign_id": ev.campaign_id, "channel": ev.channel,
            "timestamp": ev.timestamp_ms, "immediate_reward": ev.immediate_reward,
            "state": ev.state, "action": ev.action,
        }
        if ev.creative_type is not None:
            out["creative_type"] = ev.creative_type
        return out
    assert isinstance(ev, Conversion)
    out = {
        "type": "conversion", "conversion_id": ev.conversion_id, "user_id": ev.user_id, "event": ev.event,
        "value": str(ev.value), "currency": ev.currency, "timestamp": ev.timestamp_ms,
    }
    if ev.refund_of is not None:
        out["refund_of"] = ev.refund_of
    if ev.model is not None:
        out["model"] = ev.model
    return out
