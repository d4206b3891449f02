"""The storage's pure parts: the design document's storage fields, database URLs in messages, the packaged
migrations, the staged ledger row, the cache's keys."""

from __future__ import annotations

import pytest

from pipeline.events.avro import reward_to_record
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.sinks.postgres.database_url import describe, is_postgres_url, without_secret
from pipeline.sinks.postgres.migrations import migrations
from pipeline.sinks.postgres.rows import STAGED_COLUMNS, staged_row, where
from pipeline.sinks.redis_cache.keys import CacheKeys
from pipeline.sinks.redis_cache.lookups import cached_reward
from pipeline.system import DelayedRewardConfig


def test_the_design_documents_storage_examples_are_accepted() -> None:
    redis = DelayedRewardConfig(use_redis_cache=True, redis_host="localhost", redis_port=6379,
                                redis_ttl_seconds=604800)
    assert redis.redis_url() == "redis://localhost:6379/0" and redis.cache_ttl_seconds() == 604800
    db = DelayedRewardConfig(use_database_persistence=True,
                             database_url="postgresql://user:pass@localhost/delayed_rewards")
    assert db.database_url == "postgresql://user:pass@localhost/delayed_rewards"


def test_the_defaults_use_the_local_servers_and_the_ttl_is_the_attribution_window() -> None:
    config = DelayedRewardConfig(attribution_window_days=3)
    assert config.use_redis_cache and config.use_database_persistence
    assert config.redis_url() is None and config.database_url is None
    assert config.cache_ttl_seconds() == 3 * 86400


@pytest.mark.parametrize("bad", [{"redis_ttl_seconds": 0}, {"redis_port": 0}, {"redis_port": 70000},
                                 {"database_url": "sqlite:///rewards.db"}, {"database_url": "mysql://u:p@h/db"}])
def test_storage_fields_that_cannot_work_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DelayedRewardConfig(**bad)  # type: ignore[arg-type]


def test_a_database_url_is_named_without_its_password() -> None:
    url = "postgresql://analyst:s3cr%3Bet@db.internal:5433/ledger"
    assert is_postgres_url(url) and is_postgres_url("postgres://h/d") and not is_postgres_url("redis://h")
    assert describe(url) == "analyst@db.internal:5433/ledger"
    assert without_secret(f"failed for {url}", url) == "failed for postgresql://analyst:***@db.internal:5433/ledger"


def test_migrations_are_numbered_once_and_in_order() -> None:
    found = migrations()
    assert [m.version for m in found] == sorted({m.version for m in found}) and found[0].version == 1
    assert all(m.sql.strip() for m in found)


def test_a_staged_row_carries_every_column_and_the_facts_own_id() -> None:
    r = AttributedReward(RewardKind.CORRECTION, "tp;1", "ep", "u'1", "camp", "search", 2, -150, "USD", 0.5,
                         1_700_000_000_000, conversion_id="c:1", model="linear", conversion_time_ms=1_700_000_001_000)
    row = staged_row(reward_to_record(r), 3, 41, 1_700_000_002_000)
    assert len(row) == len(STAGED_COLUMNS)
    named = dict(zip(STAGED_COLUMNS, row, strict=True))
    assert named["reward_id"] == r.reward_id and named["amount_minor"] == -150 and named["kind"] == "correction"
    assert where(row) == (3, 41)


def test_cache_keys_are_namespaced_and_a_hash_reads_back_as_the_current_reward() -> None:
    keys = CacheKeys("rewards-a")
    assert keys.touchpoint("t") != CacheKeys("rewards-b").touchpoint("t") and "rewards-a" in keys.offsets
    raw = {b"user_id": b"u", b"attributed_minor": b"-25", b"currency": b"EUR", b"p:c1": b"2 75", b"p:r1": b"0 -100",
           b"channel": b"email"}
    reward = cached_reward("t", raw)
    assert reward is not None and reward.shares == {"c1": (2, 75), "r1": (0, -100)}
    assert (reward.reward_minor, reward.final) == (-25, False)
    closed = cached_reward("t", {**raw, b"final_minor": b"-25"})
    assert closed is not None and closed.final and closed.reward_minor == -25
    assert cached_reward("t", {b"user_id": b"u", b"touch_time_ms": b"1"}) is None
