"""``rewardstream evaluate``: every attribution model scored against the market's causal truth.

Simulates the market (a preset, a seed) under a uniformly random policy, writes the log, runs it through the
backfill engine once per model (the attribution engine the stream worker runs, no Kafka) and prints, per
model, the attributed value per channel beside the true incremental value, the errors, the share of organic
value given to ads, and the value of an agent fitted on the model's rewards as a fraction of the oracle's.
Writes ``evaluation.json`` and ``evaluation.png`` beside the log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import load_engine_config
from pipeline.demo.ad_market import START_MS
from pipeline.events.jsonl import event_to_json
from pipeline.market import DEFAULT_MARKET, MARKETS
from pipeline.market.exploration import exploration_log
from pipeline.model_comparison import evaluate_models
from pipeline.native.choice import ENGINES
from pipeline.synthetic import write_engine_config


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="score every attribution model against a simulated market's causal truth")
    p.add_argument("--market", choices=sorted(MARKETS), default=DEFAULT_MARKET)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=30, help="simulated days of impressions (default 30)")
    p.add_argument("--campaigns", type=int, default=10, help="campaigns side by side, each its own users "
                                                             "(default 10)")
    p.add_argument("--impressions-per-hour", type=int, default=60, help="per campaign (default 60, the demo's)")
    p.add_argument("--config", help="TOML file with an [attribution] table (default: the demo's, a 7-day window)")
    p.add_argument("--engine", choices=ENGINES, default="native")
    p.add_argument("--out", type=Path, default=Path("out/evaluate"), help="output folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.days < 1 or args.campaigns < 1 or args.impressions_per_hour < 1:
        print("evaluate: --days, --campaigns and --impressions-per-hour must be at least 1", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    config_path = args.config or write_engine_config(out / "rewardstream.toml", window_days=7)
    try:
        config = load_engine_config(config_path)
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    spec = dataclasses.replace(MARKETS[args.market](args.seed), horizon_days=float(args.days))
    log = exploration_log(spec, START_MS, args.days, args.campaigns, args.impressions_per_hour)
    path = out / "events.jsonl"
    with open(path, "wb") as fh:
        fh.writelines(orjson.dumps(event_to_json(e)) + b"\n" for e in log.events)
    evaluation = evaluate_models(path, log.truth, spec, config, args.engine)
    (out / "evaluation.json").write_text(json.dumps(evaluation.to_json(), indent=2) + "\n")
    from pipeline.report.charts import evaluation_report  # matplotlib: only when drawing

    png = evaluation_report(out / "evaluation.png", evaluation)
    print(f"market {spec.name}, seed {spec.seed}: {len(log.events):,} events ({args.campaigns} campaigns x "
          f"{args.days} days, random channels); true value {evaluation.incremental_value:,.0f} "
          f"{config.rates.base} caused by ads, {evaluation.organic_value:,.0f} organic")
    for line in evaluation.table():
        print(line)
    print(evaluation.headline())
    print(f"evaluation: {out / 'evaluation.json'}, report: {png} ({time.monotonic() - started:.0f} s)")
    return 0

