"""``rewardstream topics create|check``: the project's topics, all with one partition count."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipeline.cli.common import add_kafka_arguments, kafka_settings, wire_flags
from pipeline.kafka import TopicMismatchError, ensure_topics, partition_counts
from pipeline.kafka.topics import project_topics


def register(sub: Any) -> None:
    p = sub.add_parser("topics", help="create or check the project's Kafka topics")
    p.add_argument("action", choices=["create", "check"])
    add_kafka_arguments(p, config_help="TOML file (the [kafka] table); environment variables override it",
                        bootstrap_help="Kafka bootstrap servers (overrides the configuration)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    try:
        if args.action == "create":
            counts = ensure_topics(settings)
        else:
            counts = {t: n for t, n in partition_counts(settings, project_topics(settings)).items() if n}
            missing = set(project_topics(settings)) - set(counts)
            if missing:
                print(f"topics missing: {sorted(missing)}", file=sys.stderr)
                return 1
            if len(set(counts.values())) > 1:
                raise TopicMismatchError(f"partition counts differ: {counts}")
    except (TopicMismatchError, RuntimeError) as exc:
        print(f"topics {args.action}: {exc}", file=sys.stderr)
        return 1
    for topic, n in counts.items():
        print(f"{topic}: {n} partitions")
    return 0
