"""``rewardstream backfill``: the engine over a JSON Lines log, no Kafka."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.backfill import rejected_path, run_backfill
from pipeline.cli.common import load_engine_config, load_weights
from pipeline.events.types import MODEL_NAMES


def register(sub: Any) -> None:
    p = sub.add_parser("backfill", help="attribute a JSON Lines event log in file order")
    p.add_argument("--input", required=True, type=Path, help="events, one JSON object a line")
    p.add_argument("--output", required=True, type=Path, help="attributed rewards, one JSON object a line")
    p.add_argument("--model", choices=MODEL_NAMES, help="default model (a conversion's own 'model' wins)")
    p.add_argument("--config", help="TOML file with an [attribution] table")
    p.add_argument("--weights", help="fitted weights for data_driven/shapley (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.config, args.model)
        learned = load_weights(args.weights or config.weights_file)
    except (OSError, ValueError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    if learned is not None and learned.fallback:
        print(f"backfill: weights were fitted from {learned.journeys} journeys (< {learned.min_journeys}); "
              "data_driven and shapley attribute as linear", file=sys.stderr)
    summary = run_backfill(args.input, args.output, config, learned, progress=not args.quiet)
    for line in summary.lines():
        print(line)
    print(f"output: {args.output}")
    if summary.rejected:
        print(f"rejected lines with reasons: {rejected_path(args.output)}")
    return 0
