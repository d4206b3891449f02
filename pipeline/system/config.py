"""The design document's configuration and enums, mapped onto the pipeline's real settings.

Each field of :class:`DelayedRewardConfig` keeps the design document's name and default; its comment says
where it lands. The stores (``use_redis_cache``, ``use_database_persistence``) are sinks fed from the topics; with
no host or URL given they use the project's local servers (``pipeline.local_servers``), started on demand.
Attribution settings (window, half-life) configure the *worker*, which runs apart from the agents:
:meth:`DelayedRewardConfig.worker_attribution_table` gives the ``[attribution]`` table to start it with. The
model is sent with every conversion, so it applies whatever the worker's default is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# the design document's AttributionModel is the wire format's model names: one enum, re-exported here
from pipeline.events.types import AttributionModel as AttributionModel
from pipeline.sinks.postgres.database_url import describe, is_postgres_url
from pipeline.sinks.redis_cache.connection import redis_url_of
from pipeline.units import DAY_MS


class ConversionEvent(StrEnum):
    PURCHASE = "purchase"
    SIGNUP = "signup"
    SUBSCRIPTION = "subscription"
    LEAD = "lead"
    INSTALL = "install"
    ADD_TO_CART = "add_to_cart"


@dataclass
class DelayedRewardConfig:
    # Attribution settings
    attribution_window_days: int = 7  # worker: [attribution] window_days
    default_attribution_model: AttributionModel = AttributionModel.LINEAR  # sent as each conversion's model
    time_decay_half_life_hours: float = 24.0  # worker: [attribution] half_life_hours

    # Storage settings
    use_redis_cache: bool = True  # a Redis cache of open touchpoints and current rewards (get_user_journey, lookups)
    redis_host: str | None = None  # None: $REWARDSTREAM_REDIS_URL, else the local Redis, started on demand
    redis_port: int = 6379
    redis_ttl_seconds: int | None = None  # how long a cache entry lives; None: the attribution window
    use_database_persistence: bool = True  # the PostgreSQL reward ledger; and the replay buffer persists to RocksDB
    database_url: str | None = None  # postgresql://...; None: $REWARDSTREAM_DATABASE_URL, else the local PostgreSQL
    max_pending_rewards: int = 100000  # touchpoints tracked until final; rewards waiting for their touchpoint

    # Replay buffer settings
    replay_buffer_size: int = 50000  # ReplayBuffer capacity
    min_replay_samples: int = 1000  # get_replay_batch returns [] below this
    replay_batch_size: int = 32  # get_replay_batch's default batch size
    replay_frequency: int = 100  # every N episodes (should_replay, the Gymnasium wrapper, the examples)

    # Performance settings
    batch_attribution_size: int = 1000  # records per poll of the replay buffer's consumer
    max_concurrent_attributions: int = 10  # trigger_attribution calls awaiting rewards at once
    enable_async_processing: bool = True  # False: store_pending_reward waits for the broker's ack

    # Not in the design document; needed to run on Kafka
    cleanup_interval_hours: float = 12.0  # how often tracked touchpoints past their window are dropped
    attribution_timeout_seconds: float = 30.0  # how long trigger_attribution waits for the worker
    state_dir: str = "rewardstream-trainer"  # RocksDB directory of the replay buffer
    trainer_group: str = "delayed-reward-system"  # the replay buffer's consumer group

    def __post_init__(self) -> None:
        self.default_attribution_model = AttributionModel(self.default_attribution_model)
        for name in ("attribution_window_days", "max_pending_rewards", "replay_buffer_size", "replay_batch_size",
                     "replay_frequency", "batch_attribution_size", "max_concurrent_attributions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.time_decay_half_life_hours <= 0 or self.attribution_timeout_seconds <= 0:
            raise ValueError("time_decay_half_life_hours and attribution_timeout_seconds must be positive")
        if self.min_replay_samples < 0:
            raise ValueError("min_replay_samples must not be negative")
        if self.redis_ttl_seconds is not None and self.redis_ttl_seconds < 1:
            raise ValueError(f"redis_ttl_seconds must be at least 1, got {self.redis_ttl_seconds}")
        if not 0 < self.redis_port < 65536:
            raise ValueError(f"redis_port must be a TCP port, got {self.redis_port}")
        if self.database_url is not None and not is_postgres_url(self.database_url):
            raise ValueError("database_url must be a postgresql:// URL (the reward ledger is PostgreSQL), got "
                             f"{describe(self.database_url)!r}")

    def cache_ttl_seconds(self) -> int:
        """The cache's TTL: ``redis_ttl_seconds``, by default the attribution window."""
        return self.redis_ttl_seconds or self.attribution_window_days * DAY_MS // 1000

    def redis_url(self) -> str | None:
        """The URL of ``redis_host``/``redis_port``; None when no host is given (the defaults decide)."""
        return redis_url_of(self.redis_host, self.redis_port) if self.redis_host else None

    def worker_attribution_table(self) -> dict[str, Any]:
        """The worker's ``[attribution]`` settings that this configuration implies."""
        return {"window_days": self.attribution_window_days, "half_life_hours": self.time_decay_half_life_hours,
                "default_model": str(self.default_attribution_model)}
