"""Seeded synthetic event logs with the mess of real ones, for tests, benchmarks and the demo.

Users browse over a period, see 1–20 ads on several channels, and some convert hours to days later,
in several currencies. The log's file order is *arrival* order: most events arrive at once, some
touchpoints arrive late (within the allowed lateness), some events are sent twice, some conversions are
refunded, and optionally some lines are garbage of every kind the pipeline must refuse.

May import: ``pipeline.kafka``, ``pipeline.units``."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.units import DAY_MS, HOUR_MS

CHANNELS = ("search", "display", "social", "email", "video")
CREATIVES = ("video", "banner", "carousel", "text")
# (event, currency, typical value): the value is drawn around it
CONVERSIONS = (("purchase", "USD", 80.0), ("purchase", "EUR", 60.0), ("purchase", "JPY", 9000.0),
               ("signup", "USD", 5.0), ("subscription", "BHD", 12.0), ("lead", "USD", 20.0))
# per-channel conversion lift: the clicky channel (display) is not the converting one (search, email)
LIFT = {"search": 0.30, "display": 0.04, "social": 0.10, "email": 0.25, "video": 0.08}
CLICK_RATE = {"search": 0.05, "display": 0.30, "social": 0.12, "email": 0.08, "video": 0.10}

# rates the synthetic config uses (base USD)
RATES = {"EUR": "1.08", "JPY": "0.0067", "BHD": "2.65"}
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class LogSpec:
    users: int = 1000
    days: int = 30
    max_touches: int = 20
    late_fraction: float = 0.03
    duplicate_fraction: float = 0.01
    refund_fraction: float = 0.05
    bad_lines: int = 0
    lateness_ms: int = HOUR_MS
    seed: int = 7
    closing_partitions: int = 0  # > 0: end with closing_events for that many partitions


def engine_config_table() -> dict[str, Any]:
    """The ``[attribution]`` settings that fit these logs (rates for every currency they use)."""
    return {"base_currency": "USD", "rates": dict(RATES), "window_days": 7, "windows_days": {"signup": 1},
            "allowed_lateness_minutes": 60}


def write_engine_config(path: Path, **overrides: Any) -> Path:
    """A TOML file with :func:`engine_config_table` (plus ``overrides``) as its ``[attribution]`` table."""
    lines = ["[attribution]"]
    for key, value in {**engine_config_table(), **overrides}.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _value(rng: random.Random, typical: float, currency: str) -> str:
    v = Decimal(str(round(max(0.5, rng.lognormvariate(0, 0.5) * typical), 3)))
    digits = {"JPY": 0, "BHD": 3}.get(currency, 2)
    return str(v.quantize(Decimal(1).scaleb(-digits)))


def generate(spec: LogSpec) -> list[str]:
    """JSON Lines in arrival order (strings without newlines)."""
    rng = random.Random(spec.seed)
    timed: list[tuple[int, int, dict[str, Any]]] = []  # (arrival ms, tie-break, event)
    seq = 0

    def push(arrival: int, event: dict[str, Any]) -> None:
        nonlocal seq
        timed.append((arrival, seq, event))
        seq += 1

    span = spec.days * DAY_MS
    for u in range(spec.users):
        user = f"user-{u:06d}"
        n = rng.randint(1, spec.max_touches) if rng.random() < 0.7 else rng.randint(1, 3)
        t = T0_MS + rng.randrange(span)
        lift = 0.0
        last_touch = t
        for k in range(n):
            t += rng.randrange(10 * 60_000, 2 * DAY_MS) if k else 0
            channel = rng.choice(CHANNELS)
            lift += LIFT[channel]
            clicked = rng.random() < CLICK_RATE[channel]
            tp = {
                "type": "touchpoint", "touchpoint_id": f"tp-{u}-{k}", "episode_id": f"ep-{u}-{k // 5}",
                "user_id": user, "campaign_id": f"camp-{channel}-{rng.randint(1, 3)}", "channel": channel,
                "creative_type": rng.choice(CREATIVES), "timestamp": t,
                "immediate_reward": 1.0 if clicked else 0.0,
                "state": [round(rng.random(), 4) for _ in range(4)], "action": CHANNELS.index(channel),
            }
            delay = rng.randrange(spec.lateness_ms // 2) if rng.random() < spec.late_fraction else 0
            push(t + delay, tp)
            if rng.random() < spec.duplicate_fraction:
                push(t + delay + rng.randrange(1, 60_000), tp)
            last_touch = t
        if rng.random() < min(0.9, lift):
            event, currency, typical = rng.choice(CONVERSIONS)
            conv_t = last_touch + int(rng.expovariate(1 / (36 * HOUR_MS)))
            if rng.random() < spec.late_fraction * 3:
                # the last touch converts within minutes but reaches us after the conversion: a correction
                conv_t = last_touch + rng.randrange(60_000, spec.lateness_ms // 4)
                push(conv_t + rng.randrange(1, spec.lateness_ms // 4), {**tp, "touchpoint_id": f"tp-{u}-late"})
            conv = {"type": "conversion", "conversion_id": f"conv-{u}", "user_id": user, "event": event,
                    "value": _value(rng, typical, currency), "currency": currency, "timestamp": conv_t}
            push(conv_t, conv)
            if rng.random() < spec.duplicate_fraction:
                push(conv_t + rng.randrange(1, 60_000), conv)
            if rng.random() < spec.refund_fraction:
                refund_t = conv_t + rng.randrange(HOUR_MS, 5 * DAY_MS)
                push(refund_t, {"type": "conversion", "conversion_id": f"refund-{u}", "user_id": user,
                                "event": "refund", "value": conv["value"], "currency": currency,
                                "timestamp": refund_t, "refund_of": f"conv-{u}"})
    timed.sort(key=lambda x: (x[0], x[1]))
    lines = [json.dumps(e, separators=(",", ":")) for _, _, e in timed]
    if spec.closing_partitions:
        lines += closing_events(max(e["timestamp"] for _, _, e in timed), spec.closing_partitions)
    for i in range(spec.bad_lines):
        lines.insert(rng.randrange(1, len(lines) + 1), BAD_LINES[i % len(BAD_LINES)])
    return lines


def user_for_partition(partition: int, partitions: int, prefix: str = "sentinel") -> str:
    """A user id whose key hashes (murmur2, as every project client does) to ``partition``."""
    from pipeline.kafka import partition_for

    i = 0
    while True:
        user = f"{prefix}-{partition}-{i}"
        if partition_for(user.encode(), partitions) == partition:
            return user
        i += 1


def closing_events(newest_ms: int, partitions: int, window_ms: int = 7 * DAY_MS) -> list[str]:
    """One touchpoint and one conversion per partition, ``window`` + 1 day after ``newest_ms``.

    A stream cannot know that its input has ended; these move every partition's watermark past every
    window in the log, so the stream finalises what a backfill finalises at end of input. (They need a
    ``max_future_skew`` of more than the window + 1 day.) Their users start with "sentinel-"."""
    newest = newest_ms
    t = newest + window_ms + DAY_MS + 2 * HOUR_MS
    out = []
    for p in range(partitions):
        user = user_for_partition(p, partitions)
        out.append(json.dumps({"type": "touchpoint", "touchpoint_id": f"{user}-tp", "episode_id": "sentinel",
                               "user_id": user, "campaign_id": "sentinel", "channel": "search",
                               "timestamp": t, "immediate_reward": 0.0}, separators=(",", ":")))
        out.append(json.dumps({"type": "conversion", "conversion_id": f"{user}-cv", "user_id": user,
                               "event": "lead", "value": "0", "currency": "USD", "timestamp": t},
                              separators=(",", ":")))
    return out


# One of every kind of bad input the pipeline must refuse with a reason.
BAD_LINES = (
    '{"type": "touchpoint", "touchpoint_id": "bad-1"',  # malformed JSON
    '{"type": "touchpoint", "touchpoint_id": "bad-2", "user_id": "u", "campaign_id": "c", "channel": "x",'
    ' "timestamp": 1767225600000, "immediate_reward": 1}',  # missing episode_id
    '{"type": "touchpoint", "touchpoint_id": "bad-3", "episode_id": "e", "user_id": "u", "campaign_id": "c",'
    ' "channel": "x", "timestamp": 1767225600000, "immediate_reward": NaN}',  # NaN
    '{"type": "conversion", "conversion_id": "bad-4", "user_id": "u", "event": "purchase", "value": -5,'
    ' "currency": "USD", "timestamp": 1767225600000}',  # negative value
    '{"type": "conversion", "conversion_id": "bad-5", "user_id": "u", "event": "purchase", "value": 5,'
    ' "currency": "XYZ", "timestamp": 1767225600000}',  # unknown currency
    '{"type": "conversion", "conversion_id": "bad-6", "user_id": "u", "event": "purchase", "value": 5,'
    ' "currency": "USD", "timestamp": 1767225600}',  # seconds, not milliseconds
    '{"type": "conversion", "conversion_id": "bad-7", "user_id": "u", "event": "purchase", "value": 1e30,'
    ' "currency": "USD", "timestamp": 1767225600000}',  # absurd value
    '{"type": "click", "id": "bad-8"}',  # unknown type
    '{"type": "conversion", "conversion_id": "bad-9", "user_id": "u", "event": "purchase", "value": 5,'
    ' "currency": "USD", "timestamp": 4000000000000}',  # far in the future
)
