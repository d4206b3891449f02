"""``rewardstream cache reward TOUCHPOINT_ID`` / ``cache journey USER_ID``: look up the Redis reward cache (kept
by ``rewardstream sink redis`` or the facade) from any process; prints JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from pipeline.cli.common import add_kafka_arguments, kafka_settings
from pipeline.local_servers import LocalServerError, redis_url


def register(sub: Any) -> None:
    p = sub.add_parser("cache", help="look up a touchpoint's current reward or a user's open touchpoints in Redis")
    p.add_argument("what", choices=["reward", "journey"], help="reward: by touchpoint id; journey: by user id")
    p.add_argument("id", help="the touchpoint id (reward) or user id (journey)")
    add_kafka_arguments(p, config_help="TOML file: its rewards topic names the cache's namespace")
    p.add_argument("--redis-url", help="redis://host:port/db (default: $REWARDSTREAM_REDIS_URL, else the local server)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.sinks.redis_cache import CacheUnreachable, RewardCache

    settings = kafka_settings(args.config, args.bootstrap)
    try:
        cache = RewardCache(redis_url(args.redis_url), settings.topic_rewards)
    except (CacheUnreachable, LocalServerError) as exc:
        print(f"cache: {exc}", file=sys.stderr)
        return 2
    try:
        if args.what == "reward":
            reward = cache.touchpoint_reward(args.id)
            if reward is None:
                print(f"cache: no reward for touchpoint {args.id!r} (none yet, expired, or another namespace)",
                      file=sys.stderr)
                return 1
            sys.stdout.write(orjson.dumps(reward.to_json()).decode() + "\n")
            return 0
        for tp in cache.journey(args.id):
            sys.stdout.write(orjson.dumps({"touchpoint_id": tp.touchpoint_id, "episode_id": tp.episode_id,
                                           "campaign_id": tp.campaign_id, "channel": tp.channel,
                                           "timestamp_ms": tp.timestamp_ms, "immediate_reward": tp.immediate_reward,
                                           "creative_type": tp.creative_type}).decode() + "\n")
        return 0
    finally:
        cache.close()
