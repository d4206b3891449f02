"""The design document's ``DelayedRewardSystem``, on the real pipeline.

Agents call :meth:`store_pending_reward` (a touchpoint to Kafka) and, when a conversion is detected,
:meth:`trigger_attribution` (a conversion to Kafka; the worker attributes it; the split comes back on the
attributed-reward topic). A :class:`ReplayBuffer` in this process joins those rewards to the experiences
for :meth:`get_replay_batch`. A worker (``rewardstream worker``) must be running against the same topics.
With ``use_database_persistence`` and ``use_redis_cache`` the process also feeds the PostgreSQL reward ledger and
the Redis cache from the topics (:class:`~pipeline.system.stores.Stores`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pipeline.events.jsonl import money
from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
from pipeline.kafka.topics import ensure_topics
from pipeline.producers import ConversionProducer, EventProducer, TouchpointProducer
from pipeline.replay import ReplayBuffer
from pipeline.settings import Settings
from pipeline.system.config import ConversionEvent, DelayedRewardConfig
from pipeline.system.stores import Stores
from pipeline.units import DAY_MS

log = logging.getLogger("rewardstream.system")

CORRECTION_GRACE_SECONDS = 0.5  # how long a split may wait for a touchpoint this process sent before


class _Split:
    """Rewards of one conversion as they arrive; done once some revision covers its whole journey, or the
    engine said it had no touchpoint to pay (an unattributed event: the split is empty)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.by_revision: dict[int, dict[str, AttributedReward]] = {}
        self.complete = asyncio.Event()
        self.latest_complete: int | None = None

    def add(self, r: AttributedReward) -> None:
        shares = self.by_revision.setdefault(r.revision, {})
        if r.kind is RewardKind.UNATTRIBUTED:
            done = True
        else:
            shares[r.touchpoint_id] = r
            done = r.journey_length is not None and len(shares) >= r.journey_length
        if done:
            if self.latest_complete is None or r.revision > self.latest_complete:
                self.latest_complete = r.revision
            self.complete.set()

    def paid(self) -> set[str]:
        return set() if self.latest_complete is None else set(self.by_revision[self.latest_complete])

    def amounts(self) -> dict[str, float]:
        if self.latest_complete is None:
            return {}
        out: dict[str, float] = {}
        for tid, r in self.by_revision[self.latest_complete].items():
            currency = r.currency or r.base_currency
            minor = r.local_amount_minor if r.local_amount_minor is not None else r.amount_minor
            out[tid] = float(money(minor, currency))
        return out


class DelayedRewardSystem:
    """See the module docstring. ``settings`` default to ``Settings.load()`` (``REWARDSTREAM_*`` variables)."""

    def __init__(self, config: DelayedRewardConfig | None = None, settings: Settings | None = None) -> None:
        self.config = config or DelayedRewardConfig()
        self.settings = settings or Settings.load()
        self.stores = Stores(self.config, self.settings)  # an unreachable host or URL named in config: raises here
        # The producer before the topics: an idempotent producer fetches its producer id once a broker connection
        # is up, on a timer of librdkafka's (up to 0.5 s), and that runs while the topics are checked.
        self._producer = EventProducer(self.settings)  # touchpoints and conversions
        try:
            ensure_topics(self.settings)
        except BaseException:
            self._producer.close()
            self.stores.close()
            raise
        self.buffer = ReplayBuffer(
            self.settings, group=self.config.trainer_group, capacity=self.config.replay_buffer_size,
            path=Path(self.config.state_dir) if self.config.use_database_persistence else None,
            min_samples=0, poll_batch=self.config.batch_attribution_size,
            max_pending=self.config.max_pending_rewards)
        self._splits: dict[str, _Split] = {}
        self._splits_lock = threading.Lock()
        self.buffer.add_reward_listener(self._on_reward)
        self._tracked: OrderedDict[str, Touchpoint] = OrderedDict()  # stored here, not yet final
        self._tracked_lock = threading.Lock()  # finals arrive on the replay buffer's consumer thread
        self._last_cleanup = time.monotonic()
        self._user_clock: OrderedDict[str, int] = OrderedDict()
        self._semaphore: asyncio.Semaphore | None = None
        self.stats = {"touchpoints_stored": 0, "conversions_triggered": 0, "attributions_timed_out": 0}
        self.buffer.start()
        self._closed = False
        atexit.register(self.close)

    # ------------------------------------------------------------------ the design document's API

    async def store_pending_reward(self, *, episode_id: str, user_id: str, campaign_id: str, action: Any = None,
                                   state: Any = None, immediate_reward: float = 0.0, channel: str,
                                   creative_type: str | None = None, timestamp_ms: int | None = None) -> str:
        """Publish the touchpoint; returns its id. Invalid fields raise ``InvalidEvent`` here."""
        tp = TouchpointProducer.build(user_id=user_id, episode_id=episode_id, campaign_id=campaign_id,
                                      channel=channel, immediate_reward=immediate_reward, state=state,
                                      action=action, creative_type=creative_type,
                                      timestamp_ms=self._event_time(user_id, timestamp_ms, strictly_after=True))
        if self.config.enable_async_processing:
            self._producer.send(tp)
        else:
            await self._producer.send_async(tp)
        self._track(tp)
        self.stats["touchpoints_stored"] += 1
        return tp.touchpoint_id

    async def trigger_attribution(self, user_id: str, conversion_event: ConversionEvent | str,
                                  conversion_value: float | str, currency: str = "USD",
                                  timestamp_ms: int | None = None) -> dict[str, float]:
        """Publish the conversion and await its split: {touchpoint_id: amount in ``currency``}. Empty when
        no touchpoint was eligible (or no worker answered within ``attribution_timeout_seconds``)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.max_concurrent_attributions)
        async with self._semaphore:
            loop = asyncio.get_running_loop()
            # Touchpoints queued earlier must be on the broker before the conversion, or the worker could
            # see the conversion first and split it over fewer touchpoints (a correction would follow).
            await loop.run_in_executor(None, self._producer.flush)
            conv = ConversionProducer.build(user_id=user_id, event=str(conversion_event), value=conversion_value,
                                            currency=currency,
                                            timestamp_ms=self._event_time(user_id, timestamp_ms, False),
                                            model=str(self.config.default_attribution_model))
            split = _Split(loop)
            with self._splits_lock:
                self._splits[conv.conversion_id] = split
            try:
                await self._producer.send_async(conv)
                self.stats["conversions_triggered"] += 1
                try:
                    await asyncio.wait_for(split.complete.wait(), self.config.attribution_timeout_seconds)
                    await self._await_sent_touchpoints(split, user_id, conv.timestamp_ms)
                except TimeoutError:
                    self.stats["attributions_timed_out"] += 1
                    log.warning("no attribution for conversion %s of user %s within %.0f s: no eligible "
                                "touchpoint, or no worker running", conv.conversion_id, user_id,
                                self.config.attribution_timeout_seconds)
                return split.amounts()
            finally:
                with self._splits_lock:
                    self._splits.pop(conv.conversion_id, None)

    async def get_replay_batch(self, batch_size: int | None = None, final_only: bool = False) -> list[dict[str, Any]]:
        """Experiences as dicts (state, action, attributed_reward, original_reward, ...); [] until the buffer
        holds ``min_replay_samples``. Trainers that want arrays use ``self.buffer.sample``."""
        size = batch_size or self.config.replay_batch_size
        if len(self.buffer) < max(1, self.config.min_replay_samples):
            return []
        try:
            batch = self.buffer.sample(size, final_only=final_only, with_ids=True)
        except LookupError:
            return []
        keys = ("touchpoint_ids", "episode_ids", "user_ids", "channels", "states", "actions", "attributed_reward",
                "original_reward", "final", "delay_seconds")
        names = ("touchpoint_id", "episode_id", "user_id", "channel", "state", "action", "attributed_reward",
                 "original_reward", "final", "delay_seconds")
        columns = [batch[k].tolist() for k in keys]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def get_user_journey(self, user_id: str) -> list[Touchpoint]:
        """The user's touchpoints known here (read from the topic, or stored by this process), oldest first."""
        seen: dict[str, Touchpoint] = {}
        for row in self.buffer.journey(user_id):
            seen[row["touchpoint_id"]] = Touchpoint(row["touchpoint_id"], row["episode_id"], user_id,
                                                    row["campaign_id"], row["channel"], row["touch_time_ms"],
                                                    row["original_reward"], None, row["state"], row["action"])
        with self._tracked_lock:
            tracked = [tp for tp in self._tracked.values() if tp.user_id == user_id]
        for tp in [*tracked, *self.stores.journey(user_id)]:
            seen.setdefault(tp.touchpoint_id, tp)
        return sorted(seen.values(), key=lambda t: (t.timestamp_ms, t.touchpoint_id))

    def get_touchpoint_reward(self, touchpoint_id: str) -> float | None:
        """The touchpoint's current reward from the Redis cache, in its currency's units: the final total once
        its window closed, else the sum of the latest share of every conversion. None without the cache, or
        when no fact has reached it."""
        reward = self.stores.touchpoint_reward(touchpoint_id)
        if reward is None or reward.currency is None:
            return None
        return float(money(reward.reward_minor, reward.currency))

    def get_statistics(self) -> dict[str, Any]:
        self._cleanup()
        replay = self.buffer.statistics()
        return {
            "pending_rewards": len(self._tracked),
            "attribution_stats": {
                "total_conversions_attributed": replay["conversions_attributed"],
                "total_reward_attributed": replay["total_attributed"],
                "conversions_triggered": self.stats["conversions_triggered"],
                "attributions_timed_out": self.stats["attributions_timed_out"],
            },
            "replay_buffer": {
                "size": replay["size"], "final": replay["final"], "conversion_rate": replay["conversion_rate"],
                "avg_time_to_conversion": replay["avg_time_to_conversion_hours"],
                "per_channel": replay["per_channel"], "lag": replay["lag"],
            },
            "touchpoints_stored": self.stats["touchpoints_stored"],
        }

    def should_replay(self, episode_count: int) -> bool:
        """True every ``replay_frequency`` episodes."""
        return episode_count > 0 and episode_count % self.config.replay_frequency == 0

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._producer.close()
        finally:
            self.buffer.stop()
            self.stores.close()

    async def __aenter__(self) -> DelayedRewardSystem:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # ------------------------------------------------------------------ internals

    async def _await_sent_touchpoints(self, split: _Split, user_id: str, conversion_ms: int) -> None:
        """The worker reads touchpoints and conversions from two topics, so it may split a conversion before
        it has read a touchpoint this process sent earlier; a correction then follows at once. When the split
        leaves out such a touchpoint (one not final yet, so perhaps in the window), wait briefly for it."""
        with self._tracked_lock:
            sent = {tp.touchpoint_id for tp in self._tracked.values()
                    if tp.user_id == user_id and tp.timestamp_ms <= conversion_ms}
        deadline = time.monotonic() + CORRECTION_GRACE_SECONDS
        while not sent <= split.paid() and time.monotonic() < deadline:
            split.complete.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(split.complete.wait(), deadline - time.monotonic())

    def _on_reward(self, r: AttributedReward) -> None:
        if r.kind == RewardKind.FINAL:
            with self._tracked_lock:
                self._tracked.pop(r.touchpoint_id, None)
            return
        if r.kind not in (RewardKind.ATTRIBUTION, RewardKind.CORRECTION, RewardKind.UNATTRIBUTED) \
                or r.conversion_id is None:
            return
        with self._splits_lock:
            split = self._splits.get(r.conversion_id)
        if split is not None:
            split.loop.call_soon_threadsafe(split.add, r)

    def _event_time(self, user_id: str, given: int | None, strictly_after: bool) -> int:
        """Wall-clock event time, kept in call order per user: touchpoints stored within one millisecond
        stay in order (models like first-click depend on it), and a conversion is never before them."""
        if given is not None:
            return given
        last = self._user_clock.get(user_id)
        now = time.time_ns() // 1_000_000
        if last is not None:
            now = max(now, last + 1 if strictly_after else last)
        self._user_clock[user_id] = now
        self._user_clock.move_to_end(user_id)
        while len(self._user_clock) > self.config.max_pending_rewards:
            self._user_clock.popitem(last=False)
        return now

    def _track(self, tp: Touchpoint) -> None:
        with self._tracked_lock:
            self._tracked[tp.touchpoint_id] = tp
            while len(self._tracked) > self.config.max_pending_rewards:
                self._tracked.popitem(last=False)
        self._cleanup()

    def _cleanup(self) -> None:
        """Forget tracked touchpoints whose window has closed by the newest one's event time."""
        if time.monotonic() - self._last_cleanup < self.config.cleanup_interval_hours * 3600 or not self._tracked:
            return
        self._last_cleanup = time.monotonic()
        with self._tracked_lock:
            if not self._tracked:
                return
            newest = max(t.timestamp_ms for t in self._tracked.values())
            horizon = newest - self.config.attribution_window_days * DAY_MS
            for tid in [tid for tid, t in self._tracked.items() if t.timestamp_ms < horizon]:
                del self._tracked[tid]
