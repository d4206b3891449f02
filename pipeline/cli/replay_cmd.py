"""``rewardstream replay``: run a trainer's replay buffer and print its statistics as JSON lines.

For operators (is the buffer keeping up? what has it attributed?) and for tests that need a trainer in a
separate process they can kill."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import add_kafka_arguments, kafka_settings, wire_flags
from pipeline.replay import ReplayBuffer


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="run a replay buffer and print its statistics")
    p.add_argument("--group", default="trainer", help="the trainer's name: its own consumer group")
    p.add_argument("--path", type=Path, help="RocksDB directory: the buffer survives restarts")
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--every", type=float, default=5.0, help="seconds between statistics lines")
    p.add_argument("--until-caught-up", action="store_true",
                   help="exit once every input partition has been read to its end (and stayed so for 2 s)")
    add_kafka_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ReplayBuffer(settings, group=args.group, capacity=args.capacity, path=args.path) as buffer:
        last = 0.0
        while not stop:
            if args.until_caught_up and buffer.wait_until_caught_up(timeout=args.every, settle=2.0):
                break
            if not args.until_caught_up:
                time.sleep(0.2)
            if time.monotonic() - last >= args.every:
                last = time.monotonic()
                sys.stdout.buffer.write(orjson.dumps(buffer.statistics()) + b"\n")
                sys.stdout.flush()
        sys.stdout.buffer.write(orjson.dumps(buffer.statistics()) + b"\n")
    return 0
