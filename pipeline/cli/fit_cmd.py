"""``rewardstream fit``: fit data_driven (Markov) and shapley weights on the journeys the engine completes."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.attribution.fitting import WEIGHTINGS, fit, fit_delay
from pipeline.backfill.journeys import paths_of_log
from pipeline.cli.common import load_engine_config
from pipeline.native.choice import DEFAULT_ENGINE, ENGINES, resolve


def register(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit the learned attribution models on the engine's completed journeys")
    p.add_argument("--input", required=True, type=Path, help="events, one JSON object a line")
    p.add_argument("--output", type=Path, default=Path("attribution-weights.json"))
    p.add_argument("--config", help="TOML file with an [attribution] table (windows, min_journeys, markov_*)")
    p.add_argument("--min-journeys", type=int, help="below this many journeys, fall back to linear")
    p.add_argument("--order", choices=("1", "2", "3", "4", "auto"),
                   help="Markov order (default: the config's markov_order, 1); auto: best on held-out journeys")
    p.add_argument("--weight-by", choices=WEIGHTINGS, help="removal effects of conversions or of value "
                                                          "(default: the config's markov_weighting)")
    p.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE,
                   help="engine that completes the journeys (auto: native when installed)")
    p.add_argument("--report", type=Path, help="also write a report here: JSON and PNG (transitions, removal "
                                               "effects, Shapley values, journey counts, credit per model)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.config)
        engine = resolve(args.engine)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"fit: {exc}", file=sys.stderr)
        return 2
    min_journeys = args.min_journeys if args.min_journeys is not None else config.min_journeys
    started = time.perf_counter()
    journeys, events_in, refused = paths_of_log(args.input, config, engine)
    weights = fit(journeys, min_journeys, order=args.order or config.markov_order,
                  weighting=args.weight_by or config.markov_weighting)
    delay_started = time.perf_counter()
    weights = dataclasses.replace(weights, delay_model=fit_delay(journeys, config.max_window_ms, config.rates.base))
    delay_seconds = time.perf_counter() - delay_started
    seconds = time.perf_counter() - started
    body = weights.to_json()
    args.output.write_text(json.dumps(body, indent=2) + "\n")
    counts = journeys.counts()
    print(f"journeys: {weights.journeys:,} ({counts['converted']:,} converted, {counts['not_converted']:,} not "
          f"converted); left out as censored (still open at the end of the log): {counts['censored']:,}; "
          f"conversions with no touchpoint: {counts['unattributed_conversions']:,}; refused lines: "
          f"{refused:,}; {events_in:,} events in {seconds:.2f} s")
    order_note = ""
    if weights.markov_order_scores:
        order_note = " (held-out log-likelihood per step: " + ", ".join(
            f"{k}: {v:.4f}" for k, v in sorted(weights.markov_order_scores.items())) + ")"
    print(f"markov: order {weights.markov_order}{order_note}, weighted by {weights.markov_weighting}")
    assert weights.delay_model is not None
    print(f"delay model: {len(weights.delay_model.curves):,} keys (channel, campaign) from "
          f"{len(journeys.outcomes or ()):,} touchpoint outcomes in {delay_seconds:.2f} s")
    if weights.fallback:
        print(f"FALLBACK: fewer than {min_journeys} journeys (or none converting): data_driven and shapley "
              "will attribute as linear", file=sys.stderr)
    else:
        effects = ", ".join(f"{c}={v:.3f}" for c, v in sorted(weights.removal_effects.items()))
        print(f"markov removal effects: {effects}")
    print(f"weights {body['weights_id']} written to {args.output}")
    if args.report:
        from pipeline.report.fit_report import write_fit_report

        png = write_fit_report(args.report, journeys, weights, dataclasses.replace(config, min_journeys=min_journeys),
                               args.input, engine)
        print(f"report: {args.report / 'fit-report.json'} and {png}")
    return 0
