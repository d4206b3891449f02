"""The market as a Gymnasium environment: one step is one impression on a simulated clock.

Observation: the shown user's segment, one-hot. Action: a channel. Reward: the click (what an agent sees
at once). ``info`` names the user, channel, campaign and event time, which is what
:class:`~pipeline.gym.DelayedRewardWrapper` needs to publish the step as a touchpoint. Conversions the
impression causes, and the users' organic ones, are queued on the simulated clock and handed out by
:meth:`AdMarketEnv.due_conversions`; :attr:`AdMarketEnv.truth` keeps, per conversion, what caused it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from pipeline.events.types import Conversion
from pipeline.market.market import CHANNELS, SEGMENTS, Market
from pipeline.units import HOUR_MS

Obs = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Truth:
    """A conversion's true incremental credit: shares of its value per touch (the touch's event time, unique
    within one env) and the share no ad caused; they sum to 1."""

    campaign: str  # the env's name: touches are (campaign, event time)
    user_id: str
    value: float
    touches: tuple[tuple[int, float], ...]
    organic: float


class AdMarketEnv(gym.Env[Obs, np.int64]):
    def __init__(self, market: Market, name: str, start_ms: int, impressions_per_hour: int,
                 hours_per_episode: int = 1) -> None:
        self.market = market
        self.name = name
        self.now_ms = start_ms
        self.step_ms = HOUR_MS // impressions_per_hour
        self.steps_per_episode = impressions_per_hour * hours_per_episode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(SEGMENTS),), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(CHANNELS))
        self._user = 0
        self._segment = 0
        self._steps = 0
        self._queue: list[tuple[int, int, Conversion]] = []
        self._conversions = 0
        self.value_caused = 0.0  # true incremental value of every conversion this env's impressions caused
        self.impressions = 0
        self.truth: dict[str, Truth] = {}  # conversion id → what caused it
        for i, o in enumerate(market.organic(start_ms)):
            user_id = f"{name}-u{o.user}"
            conv = Conversion(f"{name}-o{i + 1}", user_id, "purchase", Decimal(f"{o.value:.2f}"), "USD", o.due_ms)
            heapq.heappush(self._queue, (o.due_ms, -(i + 1), conv))
            self.truth[conv.conversion_id] = Truth(name, user_id, o.value, (), 1.0)

    def _observe(self) -> Obs:
        self._user, self._segment = self.market.draw_user()
        obs = np.zeros(len(SEGMENTS), dtype=np.float32)
        obs[self._segment] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._steps = 0
        return self._observe(), {}

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        channel = int(action)
        user = self.market.reach(self._user, self._segment, channel, self.now_ms)
        outcome = self.market.impression(self._segment, channel, user, self.now_ms)
        user_id = f"{self.name}-u{user}"
        info = {"user_id": user_id, "channel": CHANNELS[channel], "campaign_id": self.name,
                "creative_type": "banner", "timestamp_ms": self.now_ms, "segment": SEGMENTS[self._segment]}
        if outcome.conversion_delay_ms is not None:
            self._conversions += 1
            due = self.now_ms + outcome.conversion_delay_ms
            conv = Conversion(f"{self.name}-c{self._conversions}", user_id, "purchase",
                              Decimal(f"{outcome.conversion_value:.2f}"), "USD", due)
            heapq.heappush(self._queue, (due, self._conversions, conv))
            self.value_caused += outcome.conversion_value
            touches: tuple[tuple[int, float], ...] = ((self.now_ms, outcome.own_share),)
            if outcome.opened_by_ms is not None:
                touches += ((outcome.opened_by_ms, 1.0 - outcome.own_share),)
            self.truth[conv.conversion_id] = Truth(self.name, user_id, outcome.conversion_value, touches, 0.0)
        self.impressions += 1
        self.now_ms += self.step_ms
        self._steps += 1
        return self._observe(), float(outcome.clicked), False, self._steps >= self.steps_per_episode, info

    def due_conversions(self, until_ms: int) -> list[Conversion]:
        """Conversions whose time has come by ``until_ms`` on the simulated clock, oldest first."""
        out: list[Conversion] = []
        while self._queue and self._queue[0][0] <= until_ms:
            out.append(heapq.heappop(self._queue)[2])
        return out
