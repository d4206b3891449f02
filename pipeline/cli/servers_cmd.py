"""``rewardstream postgres|redis start|stop|status|address``: the project's local PostgreSQL and Redis servers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.local_servers import LocalPostgres, LocalRedis, LocalServerError


def register(sub: Any) -> None:
    for name, what in (("postgres", "PostgreSQL (the reward ledger)"), ("redis", "Redis (the reward cache)")):
        p = sub.add_parser(name, help=f"start, stop or inspect the local {what} server")
        p.add_argument("action", choices=["start", "stop", "status", "address"],
                       help="address prints only the server's URL (for scripts)")
        p.add_argument("--instance", default="default", help="instance name (its own data and port)")
        p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: the usual one if free)")
        p.add_argument("--purge", action="store_true", help="with stop: also delete the instance's data")
        p.set_defaults(handler=run, server=name)


def run(args: argparse.Namespace) -> int:
    server = (LocalPostgres if args.server == "postgres" else LocalRedis)(instance=args.instance, port=args.port)
    try:
        if args.action == "start":
            status, started = server.start()
            print(f"{args.server} {'started' if started else 'already running, nothing to do:'} {status.detail}")
            print(f"url: {status.address}  log: {server.home.log_file}")
            return 0
        if args.action == "stop":
            print(f"{args.server} {server.stop(purge=args.purge)}")
            return 0
        status = server.status()
        if args.action == "address":
            if status.running and status.address:
                print(status.address)
                return 0
            print(f"{args.server} {status.detail}", file=sys.stderr)
            return 1
        print(f"{args.server} {status.detail}")
        return 0 if status.running else 1
    except LocalServerError as exc:
        print(f"{args.server} {args.action} failed: {exc}", file=sys.stderr)
        return 2
