"""``rewardstream consume``: the attributed-reward topic as a file in the backfill's output formats (JSON Lines or
Parquet)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import add_kafka_arguments, kafka_settings, wire_flags
from pipeline.kafka.reward_reader import RewardReader
from pipeline.sinks import DEFAULT_FORMAT, FORMATS, open_rewards


def register(sub: Any) -> None:
    p = sub.add_parser("consume", help="write the attributed-reward topic as JSON Lines or Parquet")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT, dest="fmt",
                   help=f"of --output (default: {DEFAULT_FORMAT}); parquet is complete once the command ends")
    p.add_argument("--until-idle", type=float, default=None,
                   help="stop after this many seconds without a new record (default: run until interrupted)")
    p.add_argument("--group", help="consumer group (default: a new one, reading from the beginning)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="write redelivered rewards too (by default a repeated reward_id is dropped)")
    add_kafka_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    reader = RewardReader(settings, args.group, **{"enable.auto.commit": True})
    seen: set[str] = set()
    written = duplicates = 0
    last = time.monotonic()
    out = open_rewards(args.output, args.fmt)
    try:
        while args.until_idle is None or time.monotonic() - last < args.until_idle:
            records = reader.read(0.5)
            if records:
                last = time.monotonic()
            lines = []
            for record in records:
                if not args.keep_duplicates:
                    if record["reward_id"] in seen:
                        duplicates += 1
                        continue
                    seen.add(record["reward_id"])
                lines.append(orjson.dumps(record) + b"\n")
            out.write(b"".join(lines))
            written += len(lines)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
        out.close()
    print(f"wrote {written:,} rewards to {args.output}; dropped {duplicates:,} redelivered")
    return 0
