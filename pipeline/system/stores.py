"""The facade's stores: the PostgreSQL ledger sink and the Redis cache writer running beside the trainer, and the
cache reader behind ``get_user_journey`` and ``get_touchpoint_reward``.

A host or URL the configuration names must answer at start (a clear error, never a hang); with none, the
project's local servers are used, started if they do not run. Several trainer processes on one set of topics
share the work: the sinks of one name form one consumer group, and every write is idempotent.
"""

from __future__ import annotations

import contextlib
import logging

from pipeline.events.types import Touchpoint
from pipeline.local_servers import database_url, redis_url
from pipeline.settings import Settings
from pipeline.sinks.postgres import PostgresSink
from pipeline.sinks.redis_cache import CachedReward, CacheWriter, RewardCache
from pipeline.system.config import DelayedRewardConfig

log = logging.getLogger("rewardstream.system.stores")


class Stores:
    def __init__(self, config: DelayedRewardConfig, settings: Settings) -> None:
        self.ledger: PostgresSink | None = None
        self.cache_writer: CacheWriter | None = None
        self.cache: RewardCache | None = None
        try:
            if config.use_database_persistence:
                self.ledger = PostgresSink(settings, database_url(config.database_url)).start()
            if config.use_redis_cache:
                url = redis_url(config.redis_url())
                self.cache = RewardCache(url, settings.topic_rewards)
                self.cache_writer = CacheWriter(settings, url, config.cache_ttl_seconds()).start()
        except BaseException:
            self.close()
            raise

    def journey(self, user_id: str) -> list[Touchpoint]:
        return self.cache.journey(user_id) if self.cache is not None else []

    def touchpoint_reward(self, touchpoint_id: str) -> CachedReward | None:
        return self.cache.touchpoint_reward(touchpoint_id) if self.cache is not None else None

    def close(self) -> None:
        for part in (self.cache_writer, self.ledger, self.cache):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
