"""``rewardstream sink postgres|redis``: the rewards topic into the PostgreSQL ledger, or the touchpoints and
rewards topics into the Redis cache, until stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from pipeline.cli.common import add_kafka_arguments, kafka_settings, load_engine_config
from pipeline.local_servers import LocalServerError, database_url, redis_url


def register(sub: Any) -> None:
    p = sub.add_parser("sink", help="write the rewards topic into the PostgreSQL ledger or the Redis cache")
    p.add_argument("store", choices=["postgres", "redis"],
                   help="postgres: the reward ledger; redis: the reward cache (open touchpoints, current rewards)")
    add_kafka_arguments(p, config_help="TOML file ([kafka]; [attribution] window_days is the cache's default TTL)")
    p.add_argument("--database-url", help="postgres: postgresql://user:password@host:port/database (default: "
                   "$REWARDSTREAM_DATABASE_URL, else the local server, started if needed)")
    p.add_argument("--redis-url", help="redis: redis://host:port/db (default: $REWARDSTREAM_REDIS_URL, else the "
                   "local server, started if needed)")
    p.add_argument("--ttl-seconds", type=int, help="redis: how long an entry lives (default: the attribution window)")
    p.add_argument("--name", default="ledger", help="postgres: the sink's name, which keys its offsets in the database")
    p.add_argument("--max-batch", type=int, default=None, help="records per transaction")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.sinks.postgres import DatabaseUnreachable, PostgresSink, describe
    from pipeline.sinks.postgres.sink import MAX_BATCH
    from pipeline.sinks.redis_cache import CacheUnreachable, CacheWriter, describe_redis
    from pipeline.sinks.redis_cache.writer import MAX_BATCH as CACHE_MAX_BATCH

    settings = kafka_settings(args.config, args.bootstrap)
    sink: PostgresSink | CacheWriter
    try:
        if args.store == "postgres":
            url = database_url(args.database_url)
            sink = PostgresSink(settings, url, name=args.name, max_batch=args.max_batch or MAX_BATCH)
            where = f"{settings.topic_rewards} -> {describe(url)} (sink {args.name!r})"
        else:
            url = redis_url(args.redis_url)
            ttl = args.ttl_seconds or load_engine_config(args.config).window_ms // 1000
            sink = CacheWriter(settings, url, ttl, max_batch=args.max_batch or CACHE_MAX_BATCH)
            where = f"{settings.topic_touchpoints}, {settings.topic_rewards} -> {describe_redis(url)} (TTL {ttl} s)"
    except (DatabaseUnreachable, CacheUnreachable, LocalServerError) as exc:
        print(f"sink {args.store}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"sink {args.store}: {where}", flush=True)
    sink.start()
    stop.wait()
    sink.close()
    print(f"sink {args.store}: stopped; {sink.stats}", flush=True)
    return 0
