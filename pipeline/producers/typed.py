"""Keyword-argument front ends for the two producers users embed: agents publish touchpoints, conversion
feeds publish conversions. Ids and event times are filled in when the caller has none."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from pipeline.events.types import Conversion, Touchpoint
from pipeline.producers.event_producer import EventProducer


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TouchpointProducer(EventProducer):
    """What an agent embeds: one call per action shown to a user."""

    @staticmethod
    def build(*, user_id: str, episode_id: str, campaign_id: str, channel: str, immediate_reward: float,
              state: Any = None, action: Any = None, creative_type: str | None = None,
              timestamp_ms: int | None = None, touchpoint_id: str | None = None) -> Touchpoint:
        return Touchpoint(touchpoint_id=touchpoint_id or uuid.uuid4().hex, episode_id=episode_id,
                          user_id=user_id, campaign_id=campaign_id, channel=channel,
                          timestamp_ms=_now_ms() if timestamp_ms is None else timestamp_ms,
                          immediate_reward=immediate_reward, creative_type=creative_type, state=state,
                          action=action)

    def publish(self, **fields: Any) -> Touchpoint:
        """Queue a touchpoint built from keyword fields (see :meth:`build`); returns it, id included."""
        tp = self.build(**fields)
        self.send(tp)
        return tp

    async def publish_async(self, **fields: Any) -> Touchpoint:
        """Like :meth:`publish`, returning once the broker acknowledged it."""
        tp = self.build(**fields)
        await self.send_async(tp)
        return tp


class ConversionProducer(EventProducer):
    """What a conversion feed embeds: purchases, signups, ... and refunds that name what they reverse."""

    @staticmethod
    def build(*, user_id: str, event: str, value: Decimal | float | int | str, currency: str = "USD",
              timestamp_ms: int | None = None, conversion_id: str | None = None, refund_of: str | None = None,
              model: str | None = None) -> Conversion:
        # Decimal(str(x)) keeps 150.1 as 150.1; Decimal(150.1) would be 150.0999999999999943...
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
        return Conversion(conversion_id=conversion_id or uuid.uuid4().hex, user_id=user_id, event=event,
                          value=amount, currency=currency,
                          timestamp_ms=_now_ms() if timestamp_ms is None else timestamp_ms,
                          refund_of=refund_of, model=model)

    def publish(self, **fields: Any) -> Conversion:
        conv = self.build(**fields)
        self.send(conv)
        return conv

    async def publish_async(self, **fields: Any) -> Conversion:
        conv = self.build(**fields)
        await self.send_async(conv)
        return conv
