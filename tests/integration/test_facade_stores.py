"""The design document's storage configuration on the facade, against a real worker, broker, PostgreSQL and Redis:
the ledger and the cache fill from what the facade's agents do; named hosts that cannot be reached are a clear
error at construction, never a hang."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from pipeline.ports import free_port
from pipeline.settings import Settings
from pipeline.sinks.postgres import DatabaseUnreachable
from pipeline.sinks.redis_cache import CacheUnreachable
from pipeline.system import DelayedRewardConfig, DelayedRewardSystem
from tests.integration.stream_harness import Worker, make_settings, wait_for


@pytest.mark.timeout(240)
def test_the_design_documents_storage_config_feeds_the_ledger_and_the_cache(
        kafka_settings: Settings, tmp_path: Path, database_url: str, local_redis: str) -> None:
    settings = make_settings(kafka_settings, f"rs-stores-{uuid.uuid4().hex[:8]}")
    worker = Worker(settings, None, tmp_path, "w1", idle_timeout_seconds=2).start()
    redis_at = urlsplit(local_redis)
    config = DelayedRewardConfig(use_redis_cache=True, redis_host=redis_at.hostname, redis_port=redis_at.port or 0,
                                 redis_ttl_seconds=604800, use_database_persistence=True, database_url=database_url,
                                 state_dir=str(tmp_path / "state"))
    system = DelayedRewardSystem(config, settings)
    try:
        async def agents() -> tuple[str, list[str], dict[str, float]]:
            user = f"user-{uuid.uuid4().hex[:8]}"
            ids = [await system.store_pending_reward(episode_id="ep", user_id=user, campaign_id=f"camp-{i}",
                                                     channel=channel, immediate_reward=0.5)
                   for i, channel in enumerate(("search", "display"))]
            return user, ids, await system.trigger_attribution(user, "purchase", "250.00")

        user, ids, split = asyncio.run(agents())
        assert sorted(split.values()) == [125.0, 125.0]
        wait_for(lambda: all(system.get_touchpoint_reward(t) == 125.0 for t in ids), 30, "the cache")
        assert [tp.touchpoint_id for tp in system.get_user_journey(user)] == ids
        assert system.get_user_journey(f"nobody-{uuid.uuid4().hex}") == []

        def ledger_rows() -> int:
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM reward_current WHERE touchpoint_id = ANY(%s)",
                                   (ids,)).fetchone()
            return int(row[0]) if row else 0

        wait_for(lambda: ledger_rows() == 2, 30, "the ledger")
        with psycopg.connect(database_url) as conn:
            by_channel = dict(conn.execute("SELECT channel, value_minor FROM attributed_value_by_channel "
                                           "WHERE model = 'linear'").fetchall())
        assert by_channel == {"search": 12500, "display": 12500}
    finally:
        system.close()
        worker.stop()


def test_named_stores_that_cannot_be_reached_fail_at_construction(kafka_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(CacheUnreachable, match=f"127.0.0.1:{port}"):
        DelayedRewardSystem(DelayedRewardConfig(redis_host="127.0.0.1", redis_port=port,
                                                use_database_persistence=False, state_dir=str(tmp_path / "a")),
                            kafka_settings)
    with pytest.raises(DatabaseUnreachable) as caught:
        DelayedRewardSystem(DelayedRewardConfig(database_url=f"postgresql://user:pass-w0rd@127.0.0.1:{port}/db",
                                                use_redis_cache=False, state_dir=str(tmp_path / "b")),
                            kafka_settings)
    assert f"user@127.0.0.1:{port}/db" in str(caught.value) and "pass-w0rd" not in str(caught.value)
    assert time.monotonic() - started < 20
    with pytest.raises(ValueError, match="postgresql://"):
        DelayedRewardConfig(database_url="sqlite:///rewards.db")
