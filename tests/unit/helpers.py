"""Small builders for engine tests: events at hour offsets from a fixed epoch."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.events.types import AttributedReward, Conversion, Touchpoint
from pipeline.units import HOUR_MS

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def tp(tid: str, hour: float, user: str = "u1", channel: str = "search", reward: float = 0.0) -> Touchpoint:
    return Touchpoint(touchpoint_id=tid, episode_id=f"ep-{tid}", user_id=user, campaign_id="camp",
                      channel=channel, timestamp_ms=T0 + int(hour * HOUR_MS), immediate_reward=reward)


def conv(cid: str, hour: float, value: str = "120", user: str = "u1", currency: str = "USD",
         event: str = "purchase", refund_of: str | None = None, model: str | None = None) -> Conversion:
    return Conversion(conversion_id=cid, user_id=user, event=event, value=Decimal(value), currency=currency,
                      timestamp_ms=T0 + int(hour * HOUR_MS), refund_of=refund_of, model=model)


def engine(**kw: Any) -> AttributionEngine:
    return AttributionEngine(EngineConfig(**kw))


def amounts(rewards: list[AttributedReward]) -> dict[str, int]:
    return {r.touchpoint_id: r.amount_minor for r in rewards}
