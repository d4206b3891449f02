"""``rewardstream sink postgres|redis``: the rewards topic into the PostgreSQL ledger or the Redis cache, until
stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from pipeline.cli.common import add_kafka_arguments, kafka_settings
from pipeline.local_servers import LocalServerError, database_url


def register(sub: Any) -> None:
    p = sub.add_parser("sink", help="write the rewards topic into the PostgreSQL ledger (or the Redis cache)")
    p.add_argument("store", choices=["postgres"], help="postgres: the reward ledger")
    add_kafka_arguments(p)
    p.add_argument("--database-url", help="postgresql://user:password@host:port/database (default: "
                   "$REWARDSTREAM_DATABASE_URL, else the local server, started if needed)")
    p.add_argument("--name", default="ledger", help="the sink's name: keys its offsets in the database")
    p.add_argument("--max-batch", type=int, default=None, help="records per database transaction")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.sinks.postgres import DatabaseUnreachable, PostgresSink, describe
    from pipeline.sinks.postgres.sink import MAX_BATCH

    settings = kafka_settings(args.config, args.bootstrap)
    try:
        url = database_url(args.database_url)
        sink = PostgresSink(settings, url, name=args.name, max_batch=args.max_batch or MAX_BATCH)
    except (DatabaseUnreachable, LocalServerError) as exc:
        print(f"sink postgres: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"sink postgres: {settings.topic_rewards} -> {describe(url)} (sink {args.name!r})", flush=True)
    sink.start()
    stop.wait()
    sink.close()
    print(f"sink postgres: stopped; {sink.stats}", flush=True)
    return 0
