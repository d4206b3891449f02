"""``rewardstream kafka start|stop|status``: the project-managed local broker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.local_kafka import LocalKafka, LocalKafkaError
from pipeline.local_kafka.broker import DEFAULT_KAFKA_VERSION


def register(sub: Any) -> None:
    p = sub.add_parser("kafka", help="start, stop or inspect the local single-node Kafka broker")
    p.add_argument("action", choices=["start", "stop", "status", "address"],
                   help="address prints only the bootstrap address of a running broker (for scripts)")
    p.add_argument("--port", type=int, default=None,
                   help="listener port (default 9092, or a free port when 9092 is taken)")
    p.add_argument("--instance", default="default", help="broker instance name (its own data and port)")
    p.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION)
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the broker to answer")
    p.add_argument("--purge", action="store_true", help="with stop: also delete the instance's data and log")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    broker = LocalKafka(instance=args.instance, port=args.port, kafka_version=args.kafka_version)
    try:
        if args.action == "start":
            status, started = broker.start(timeout=args.timeout)
            verb = "started" if started else "already running, nothing to do:"
            print(f"kafka {verb} {status.detail}")
            print(f"bootstrap: {status.bootstrap}  log: {broker.log_file}")
            return 0
        if args.action == "stop":
            print(f"kafka {broker.stop(purge=args.purge)}")
            return 0
        status = broker.status()
        if args.action == "address":
            if status.running and status.bootstrap:
                print(status.bootstrap)
                return 0
            print(f"kafka {status.detail}", file=sys.stderr)
            return 1
        print(f"kafka {status.detail}")
        return 0 if status.running else 1
    except LocalKafkaError as exc:
        print(f"kafka {args.action} failed: {exc}", file=sys.stderr)
        return 2
