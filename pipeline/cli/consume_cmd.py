"""``rewardstream consume``: the attributed-reward topic as JSON Lines (the backfill's output format)."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import kafka_settings
from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.jsonl import reward_to_json
from pipeline.kafka import consumer_config


def register(sub: Any) -> None:
    p = sub.add_parser("consume", help="write the attributed-reward topic as JSON Lines")
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--until-idle", type=float, default=None,
                   help="stop after this many seconds without a new record (default: run until interrupted)")
    p.add_argument("--group", help="consumer group (default: a new one, reading from the beginning)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="write redelivered rewards too (by default a repeated reward_id is dropped)")
    p.add_argument("--config", help="TOML file; environment variables override it")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer

    settings = kafka_settings(args.config, args.bootstrap)
    consumer = Consumer(consumer_config(settings, args.group or f"rewardstream-consume-{uuid.uuid4().hex[:8]}",
                                        **{"enable.auto.commit": True}))
    consumer.subscribe([settings.topic_rewards])
    codec = AvroCodec("attributed_reward")
    seen: set[str] = set()
    written = duplicates = 0
    last = time.monotonic()
    try:
        with open(args.output, "wb") as out:
            while args.until_idle is None or time.monotonic() - last < args.until_idle:
                msgs = consumer.consume(5000, 0.5)
                for msg in msgs:
                    value = msg.value()
                    if msg.error() or value is None:
                        continue
                    last = time.monotonic()
                    reward = reward_from_record(codec.decode(value))
                    if not args.keep_duplicates:
                        if reward.reward_id in seen:
                            duplicates += 1
                            continue
                        seen.add(reward.reward_id)
                    out.write(orjson.dumps(reward_to_json(reward)) + b"\n")
                    written += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"wrote {written:,} rewards to {args.output}; dropped {duplicates:,} redelivered")
    return 0
