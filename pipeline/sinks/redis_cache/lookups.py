"""Reading the cache from any process: a touchpoint's current reward by id (one round trip), a user's open
touchpoints (two)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.events.types import Touchpoint
from pipeline.sinks.redis_cache.connection import connect
from pipeline.sinks.redis_cache.keys import CacheKeys


@dataclass(frozen=True)
class CachedReward:
    """A touchpoint's reward as the cache holds it. ``attributed_minor`` sums the latest share of every
    conversion (refunds negative); ``final_minor`` is the total once the window closed (then it is the reward)."""

    touchpoint_id: str
    user_id: str
    attributed_minor: int
    final_minor: int | None
    currency: str | None
    shares: dict[str, tuple[int, int]]  # conversion id → (revision, amount_minor)
    channel: str | None
    campaign_id: str | None

    @property
    def final(self) -> bool:
        return self.final_minor is not None

    @property
    def reward_minor(self) -> int:
        return self.final_minor if self.final_minor is not None else self.attributed_minor

    def to_json(self) -> dict[str, Any]:
        return {"touchpoint_id": self.touchpoint_id, "user_id": self.user_id, "reward_minor": self.reward_minor,
                "attributed_minor": self.attributed_minor, "final_minor": self.final_minor, "final": self.final,
                "currency": self.currency, "channel": self.channel, "campaign_id": self.campaign_id,
                "shares": {c: {"revision": r, "amount_minor": a} for c, (r, a) in self.shares.items()}}


def _text(raw: dict[bytes, bytes], name: str) -> str | None:
    value = raw.get(name.encode())
    return None if value is None else value.decode()


def cached_reward(touchpoint_id: str, raw: dict[bytes, bytes]) -> CachedReward | None:
    """The reward of a touchpoint hash (None: no fact has paid or closed it)."""
    shares = {}
    for field, value in raw.items():
        if field.startswith(b"p:"):
            revision, amount = value.split(b" ", 1)
            shares[field[2:].decode()] = (int(revision), int(amount))
    final = _text(raw, "final_minor")
    if not shares and final is None:
        return None
    return CachedReward(touchpoint_id, _text(raw, "user_id") or "", int(raw.get(b"attributed_minor", b"0")),
                        None if final is None else int(final), _text(raw, "currency"), shares,
                        _text(raw, "channel"), _text(raw, "campaign_id"))


class RewardCache:
    """Lookups against the cache at ``url`` under ``namespace`` (the rewards topic the writer reads)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self.keys = CacheKeys(namespace)

    def touchpoint_reward(self, touchpoint_id: str) -> CachedReward | None:
        return cached_reward(touchpoint_id, self.client.hgetall(self.keys.touchpoint(touchpoint_id)))

    def journey(self, user_id: str) -> list[Touchpoint]:
        """The user's open touchpoints the cache holds, oldest first."""
        ids = [tid.decode() for tid in self.client.zrange(self.keys.user(user_id), 0, -1)]
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keys.touchpoint(tid))
        out = []
        for tid, raw in zip(ids, pipe.execute(), strict=True):
            if b"immediate_reward" not in raw:
                continue  # expired meanwhile
            out.append(Touchpoint(tid, _text(raw, "episode_id") or "", user_id, _text(raw, "campaign_id") or "",
                                  _text(raw, "channel") or "", int(raw[b"touch_time_ms"]),
                                  float(raw[b"immediate_reward"]), _text(raw, "creative_type") or None,
                                  orjson.loads(raw[b"state"]), orjson.loads(raw[b"action"])))
        return out

    def close(self) -> None:
        self.client.close()
