"""``rewardstream backfill``: the engine over a JSON Lines log, or over the input topics' history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.backfill import rejected_path, run_backfill
from pipeline.cli.common import add_kafka_arguments, kafka_settings, load_engine_config, load_weights, wire_flags
from pipeline.events.types import MODEL_NAMES
from pipeline.native.choice import ENGINES, resolve
from pipeline.settings import Settings
from pipeline.sinks import DEFAULT_FORMAT, FORMATS


def register(sub: Any) -> None:
    p = sub.add_parser("backfill", help="attribute a JSON Lines event log in file order, or the input topics' "
                                        "history (--from-kafka)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="events, one JSON object a line")
    source.add_argument("--from-kafka", action="store_true",
                        help="re-attribute the touchpoint and conversion topics' history (read by assignment: the "
                             "live worker's offsets and state are not touched)")
    p.add_argument("--output", type=Path, help="attributed rewards: one JSON object a line, or Parquet (--format)")
    p.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT, dest="fmt",
                   help=f"of --output (default: {DEFAULT_FORMAT}); parquet streams row groups as rewards come")
    p.add_argument("--to-topic", help="with --from-kafka: publish the rewards (Avro) to this topic instead of a file")
    p.add_argument("--rejected", type=Path, help="refused events with reasons (default: next to --output)")
    p.add_argument("--partitions", help="with --from-kafka: only these partitions, e.g. 0,3,5")
    p.add_argument("--model", choices=MODEL_NAMES, help="default model (a conversion's own 'model' wins)")
    add_kafka_arguments(p, config_help="TOML file with an [attribution] table (and [kafka] for --from-kafka)",
                        bootstrap_help="with --from-kafka: Kafka bootstrap servers")
    p.add_argument("--weights", help="fitted weights for data_driven/shapley (default: the config's)")
    p.add_argument("--engine", choices=ENGINES,
                   help="attribution engine (default: the configuration's, auto: native when installed)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.from_kafka:
        if (args.output is None) == (args.to_topic is None):
            print("backfill: --from-kafka needs exactly one of --output FILE and --to-topic TOPIC", file=sys.stderr)
            return 2
    elif args.output is None or args.to_topic or args.partitions:
        print("backfill: --input needs --output (--to-topic and --partitions go with --from-kafka)", file=sys.stderr)
        return 2
    try:
        config = load_engine_config(args.config, args.model)
        learned = load_weights(args.weights or config.weights_file)
        engine = resolve(args.engine or Settings.load(args.config).engine)
        partitions = [int(p) for p in args.partitions.split(",")] if args.partitions else None
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    if learned is not None and learned.fallback:
        print(f"backfill: weights were fitted from {learned.journeys} journeys (< {learned.min_journeys}); "
              "data_driven and shapley attribute as linear", file=sys.stderr)
    if args.from_kafka:
        return _from_kafka(args, config, learned, engine, partitions)
    summary = run_backfill(args.input, args.output, config, learned, progress=not args.quiet, engine=engine,
                           fmt=args.fmt)
    return _report(summary.lines(), str(args.output), summary.rejected, rejected_path(args.output))


def _report(lines: list[str], output: str, rejected: int, rejected_file: Path) -> int:
    for line in lines:
        print(line)
    print(f"output: {output}")
    if rejected:
        print(f"rejected with reasons: {rejected_file}")
    return 0


def _from_kafka(args: argparse.Namespace, config: Any, learned: Any, engine: str, partitions: list[int] | None
                ) -> int:
    from pipeline.backfill.from_kafka import run_kafka_backfill

    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    rejected = args.rejected or (rejected_path(args.output) if args.output else Path(f"{args.to_topic}.rejected.jsonl"))
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        summary = run_kafka_backfill(settings, config, learned, output=args.output, to_topic=args.to_topic,
                                     rejected_path=rejected, engine=engine, partitions=partitions, progress=say,
                                     fmt=args.fmt)
    except (ValueError, RuntimeError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 1
    return _report(summary.lines(), str(args.output or "topic " + args.to_topic), summary.rejected, rejected)
