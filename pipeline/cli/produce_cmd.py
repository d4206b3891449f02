"""``rewardstream produce``: publish a JSON Lines event log (the backfill's input) to Kafka."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import add_kafka_arguments, kafka_settings, wire_flags
from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.producers import DeliveryError, EventProducer


def register(sub: Any) -> None:
    p = sub.add_parser("produce", help="publish a JSON Lines event log to the input topics")
    p.add_argument("--input", required=True, type=Path)
    add_kafka_arguments(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    producer = EventProducer(settings)
    refused = 0
    bar: Any = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(args.input), unit="B", unit_scale=True, desc="produce", leave=False)
    with open(args.input, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if bar is not None:
                bar.update(len(line))
            if not line.strip():
                continue
            try:
                producer.send(parse_event(orjson.loads(line)))
            except (orjson.JSONDecodeError, InvalidEvent) as exc:
                refused += 1
                print(f"line {number}: refused: {exc}", file=sys.stderr)
    if bar is not None:
        bar.close()
    try:
        producer.close()
    except DeliveryError as exc:
        print(f"produce: {exc}", file=sys.stderr)
        return 1
    print(f"produced {producer.delivered:,} events to {settings.topic_touchpoints} and "
          f"{settings.topic_conversions}; refused {refused} lines")
    return 0
