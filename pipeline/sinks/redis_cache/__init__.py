"""The Redis reward cache: per user, the open touchpoints; per touchpoint, its current reward. Fed from the
touchpoints and rewards topics by :class:`CacheWriter` (``rewardstream sink redis``, or the facade with
``use_redis_cache``), read by :class:`RewardCache` from any process (``rewardstream cache``).

``keys`` names the keys; ``scripts`` holds the Lua that folds one fact into a touchpoint (atomic, idempotent:
the latest revision of each conversion's share wins); ``writer`` is the consumer, with its offsets kept in Redis
so that a flushed or restarted Redis is rebuilt from the topics; ``lookups`` reads. May import
``pipeline.events``, ``pipeline.kafka``, ``pipeline.settings`` and redis-py.
"""

from pipeline.sinks.redis_cache.connection import CacheUnreachable, describe_redis, redis_url_of
from pipeline.sinks.redis_cache.lookups import CachedReward, RewardCache
from pipeline.sinks.redis_cache.writer import CacheWriter

__all__ = ["CacheUnreachable", "CacheWriter", "CachedReward", "RewardCache", "describe_redis", "redis_url_of"]
