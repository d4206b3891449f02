"""A Gymnasium wrapper that turns every step into a touchpoint and hands delayed rewards back in ``info``.

The wrapped environment says who saw the ad and on which channel (``info["user_id"]``,
``info["channel"]``, optionally ``info["campaign_id"]``, ``info["creative_type"]`` and the event time
``info["timestamp_ms"]``); the wrapper publishes (state before the action, action, immediate reward,
episode) through a :class:`TouchpointProducer`. With a :class:`ReplayBuffer`, attributed rewards that have
arrived for the wrapper's finished episodes are reported at the next step or reset as
``info["delayed_rewards"]``: dicts of touchpoint_id, episode_id, kind, amount, conversion_id, revision.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from pipeline.events.jsonl import money
from pipeline.events.types import AttributedReward
from pipeline.producers import TouchpointProducer
from pipeline.replay import ReplayBuffer


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class DelayedRewardWrapper(gym.Wrapper[Any, Any, Any, Any]):
    def __init__(self, env: gym.Env[Any, Any], producer: TouchpointProducer, buffer: ReplayBuffer | None = None,
                 *, campaign_id: str = "default", max_finished_episodes: int = 100_000) -> None:
        super().__init__(env)
        self.producer = producer
        self.campaign_id = campaign_id
        self.episode_id = ""
        self._obs: Any = None
        self._finished: deque[str] = deque(maxlen=max_finished_episodes)
        self._finished_set: set[str] = set()
        self._updates: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if buffer is not None:
            buffer.add_reward_listener(self._on_reward)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if self.episode_id:
            self._finish(self.episode_id)
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_id = uuid.uuid4().hex
        self._obs = obs
        info = {**info, "episode_id": self.episode_id}
        self._report(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        missing = [k for k in ("user_id", "channel") if k not in info]
        if missing:
            raise KeyError(f"the environment's info must name {missing} for each step's touchpoint")
        tp = self.producer.publish(
            user_id=str(info["user_id"]), episode_id=self.episode_id,
            campaign_id=str(info.get("campaign_id", self.campaign_id)), channel=str(info["channel"]),
            immediate_reward=float(reward), state=_jsonable(self._obs), action=_jsonable(action),
            creative_type=info.get("creative_type"), timestamp_ms=info.get("timestamp_ms"))
        self._obs = obs
        info = {**info, "touchpoint_id": tp.touchpoint_id, "episode_id": self.episode_id}
        if terminated or truncated:
            self._finish(self.episode_id)
            self.episode_id = ""
        self._report(info)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.producer.flush()
        super().close()

    def _finish(self, episode_id: str) -> None:
        with self._lock:
            if len(self._finished) == self._finished.maxlen:
                self._finished_set.discard(self._finished[0])
            self._finished.append(episode_id)
            self._finished_set.add(episode_id)

    def _on_reward(self, r: AttributedReward) -> None:
        with self._lock:
            if r.episode_id not in self._finished_set:
                return
            self._updates.append({
                "touchpoint_id": r.touchpoint_id, "episode_id": r.episode_id, "kind": str(r.kind),
                "amount": float(money(r.amount_minor, r.base_currency)),
                "conversion_id": r.conversion_id, "revision": r.revision, "original_reward": r.original_reward})

    def _report(self, info: dict[str, Any]) -> None:
        with self._lock:
            if self._updates:
                info["delayed_rewards"], self._updates = self._updates, []
