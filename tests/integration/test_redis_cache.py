"""The Redis reward cache against the real broker and the project's real Redis server: every touchpoint's current
reward and every user's open touchpoints equal the facts, through redelivery, a flush and a restart of Redis;
an unreachable Redis is a clear error at once; lookups from another process (the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from pipeline.compare import facts
from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
from pipeline.kafka.topics import ensure_topics
from pipeline.local_servers import LocalRedis
from pipeline.ports import free_port
from pipeline.settings import Settings
from pipeline.sinks.redis_cache import CacheUnreachable, CacheWriter, RewardCache
from tests.integration.storage_harness import (
    backfill_rewards,
    json_records,
    log_touchpoints,
    produce_rewards,
    produce_touchpoints,
)
from tests.integration.stream_harness import wait_for

TTL = 7 * 86400


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Touchpoint], list[AttributedReward]]:
    tmp = tmp_path_factory.mktemp("journeys")
    rewards = backfill_rewards(tmp, users=150, days=12)
    return log_touchpoints(tmp), rewards


@pytest.fixture
def topics(kafka_settings: Settings) -> Settings:
    ensure_topics(kafka_settings, [kafka_settings.topic_touchpoints, kafka_settings.topic_rewards])
    return kafka_settings


def expected_rewards(rewards: list[AttributedReward]) -> dict[str, tuple[int, int | None]]:
    """touchpoint id → (sum of the latest share of every conversion, final total or None)."""
    f = facts(json_records(rewards))
    attributed: dict[str, int] = defaultdict(int)
    for (_user, _conversion, touchpoint), amount in f.amounts.items():
        attributed[touchpoint] += amount
    out = {t: (a, None) for t, a in attributed.items()}
    for (_user, touchpoint), total in f.finals.items():
        out[touchpoint] = (attributed.get(touchpoint, 0), total)
    return out


def cache_matches(cache: RewardCache, touchpoints: list[Touchpoint], rewards: list[AttributedReward]) -> bool:
    for tid, (attributed, final) in expected_rewards(rewards).items():
        got = cache.touchpoint_reward(tid)
        if got is None or got.attributed_minor != attributed or got.final_minor != final:
            return False
    finals = {r.touchpoint_id for r in rewards if r.kind == "final"}
    by_user: dict[str, list[str]] = defaultdict(list)
    for tp in sorted(touchpoints, key=lambda t: (t.timestamp_ms, t.touchpoint_id)):
        if tp.touchpoint_id not in finals:
            by_user[tp.user_id].append(tp.touchpoint_id)
    users = {tp.user_id for tp in touchpoints}
    return all(sorted(t.touchpoint_id for t in cache.journey(u)) == sorted(by_user.get(u, [])) for u in users)


def test_the_cache_holds_each_touchpoints_current_reward_and_each_users_open_touchpoints(
        topics: Settings, local_redis: str, journeys: tuple[list[Touchpoint], list[AttributedReward]]) -> None:
    touchpoints, rewards = journeys
    still_open = [Touchpoint(f"open-{i}", "ep-9", "user-with-open-touchpoints", "camp-1", "search",
                             1_800_000_000_000 + i, 0.25 * i, "video", [0.5, float(i)], {"bid": i, "arm": "b"})
                  for i in range(3)]  # no final: their window has not closed
    touchpoints = [*touchpoints, *still_open]
    produce_touchpoints(topics, touchpoints)
    produce_rewards(topics, rewards)
    writer = CacheWriter(topics, local_redis, TTL).start()
    cache = RewardCache(local_redis, topics.topic_rewards)
    try:
        wait_for(writer.caught_up.is_set, 60, "the cache writer")
        assert cache_matches(cache, touchpoints, rewards)
        produce_rewards(topics, rewards[::3])  # redelivered facts change nothing
        wait_for(writer.caught_up.is_set, 30, "the redelivery")
        time.sleep(0.2)
        assert cache_matches(cache, touchpoints, rewards)
        assert writer.stats["stale"] > 0
        some = next(r for r in rewards if r.kind == "final")
        ttl = cache.client.ttl(cache.keys.touchpoint(some.touchpoint_id))
        assert 0 < ttl <= TTL
        assert cache.journey("user-with-open-touchpoints") == still_open  # state, action and all, oldest first
    finally:
        writer.close()
        cache.close()


def test_a_flushed_or_restarted_redis_is_rebuilt_from_the_topics(
        topics: Settings, tmp_path: Path, journeys: tuple[list[Touchpoint], list[AttributedReward]]) -> None:
    touchpoints, rewards = journeys
    server = LocalRedis(instance="restarted", cache_dir=tmp_path)
    status, _ = server.start()
    assert status.address
    url = status.address
    produce_touchpoints(topics, touchpoints)
    produce_rewards(topics, rewards)
    writer = CacheWriter(topics, url, TTL, retry_seconds=0.2).start()
    try:
        wait_for(writer.caught_up.is_set, 60, "the first fill")
        cache = RewardCache(url, topics.topic_rewards)
        assert cache_matches(cache, touchpoints, rewards)
        cache.client.flushall()
        wait_for(lambda: cache_matches(cache, touchpoints, rewards), 60, "the rebuild after FLUSHALL")
        cache.close()
        server.stop()
        server.start()
        cache = RewardCache(url, topics.topic_rewards)
        assert cache.touchpoint_reward(rewards[0].touchpoint_id) is None  # nothing on disk: a fresh Redis
        wait_for(lambda: cache_matches(cache, touchpoints, rewards), 60, "the rebuild after a restart")
        assert writer.stats["rebuilds"] >= 2
        cache.close()
    finally:
        writer.close()
        server.stop(purge=True)


def test_an_unreachable_redis_is_a_clear_error_at_once(topics: Settings) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(CacheUnreachable, match=f"127.0.0.1:{port}"):
        CacheWriter(topics, f"redis://:hunter2@127.0.0.1:{port}/0", TTL)
    with pytest.raises(CacheUnreachable) as caught:
        RewardCache(f"redis://:hunter2@127.0.0.1:{port}/0", topics.topic_rewards)
    assert "hunter2" not in str(caught.value)
    assert time.monotonic() - started < 10


def test_any_process_looks_up_a_touchpoints_reward_by_id(
        topics: Settings, local_redis: str, journeys: tuple[list[Touchpoint], list[AttributedReward]]) -> None:
    rewards = journeys[1]
    produce_rewards(topics, rewards)
    writer = CacheWriter(topics, local_redis, TTL).start()
    try:
        wait_for(writer.caught_up.is_set, 60, "the cache writer")
    finally:
        writer.close()
    tid, (attributed, final) = next((t, v) for t, v in expected_rewards(rewards).items() if v[1] is not None)
    env = {**os.environ, "REWARDSTREAM_TOPIC_REWARDS": topics.topic_rewards}
    out = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "cache", "reward", tid, "--redis-url",
                          local_redis, "--bootstrap", topics.bootstrap_servers], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = orjson.loads(out.stdout)
    assert (got["attributed_minor"], got["final_minor"], got["reward_minor"]) == (attributed, final, final)
    missing = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "cache", "reward", "no-such-touchpoint",
                              "--redis-url", local_redis], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no reward" in missing.stderr


def test_corrections_through_zero_and_negative_shares_fold_exactly(topics: Settings, local_redis: str) -> None:
    def share(tp: str, conversion: str, revision: int, amount: int) -> AttributedReward:
        return AttributedReward(RewardKind.CORRECTION if revision else RewardKind.ATTRIBUTION, tp, "ep", "u-zero",
                                "camp", "search", revision, amount, "USD", 0.0, 1_700_000_000_000,
                                conversion_id=conversion, model="linear")

    facts_in = [share("tp-a", "c1", 0, 0), share("tp-a", "c1", 1, 50), share("tp-b", "c2", 0, -30),
                share("tp-b", "c2", 1, 0), share("tp-b", "c3", 0, 7), share("tp-a", "c1", 0, 0)]
    produce_rewards(topics, facts_in)
    writer = CacheWriter(topics, local_redis, TTL).start()
    cache = RewardCache(local_redis, topics.topic_rewards)
    try:
        wait_for(writer.caught_up.is_set, 30, "the cache writer")
        a, b = cache.touchpoint_reward("tp-a"), cache.touchpoint_reward("tp-b")
        assert a is not None and b is not None
        assert (a.attributed_minor, b.attributed_minor) == (50, 7)
        assert writer.stats["errors"] == 0 and writer.stats["stale"] == 1
    finally:
        writer.close()
        cache.close()
