"""``rewardstream fit``: fit data_driven (Markov) and shapley weights from a JSON Lines event log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.attribution.fitting import completed_journeys, fit
from pipeline.cli.common import load_engine_config
from pipeline.events.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import Event


def register(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit the learned attribution models from completed journeys")
    p.add_argument("--input", required=True, type=Path)
    p.add_argument("--output", type=Path, default=Path("attribution-weights.json"))
    p.add_argument("--config", help="TOML file with an [attribution] table (windows, min_journeys)")
    p.add_argument("--min-journeys", type=int, help="below this many journeys, fall back to linear")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_engine_config(args.config)
    min_journeys = args.min_journeys if args.min_journeys is not None else config.min_journeys
    events: list[Event] = []
    bad = 0
    with open(args.input, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                events.append(parse_event(orjson.loads(line)))
            except (orjson.JSONDecodeError, InvalidEvent):
                bad += 1
    journeys = completed_journeys(events, config.window_for)
    weights = fit(journeys, min_journeys)
    body = weights.to_json()
    args.output.write_text(json.dumps(body, indent=2) + "\n")
    print(f"journeys: {weights.journeys:,} ({weights.converting_journeys:,} converting); skipped bad lines: {bad}")
    if weights.fallback:
        print(f"FALLBACK: fewer than {min_journeys} journeys (or none converting): data_driven and shapley "
              "will attribute as linear", file=sys.stderr)
    else:
        effects = ", ".join(f"{c}={v:.3f}" for c, v in sorted(weights.removal_effects.items()))
        print(f"markov removal effects: {effects}")
    print(f"weights {body['weights_id']} written to {args.output}")
    return 0
