"""``rewardstream report``: the attribution pictures for any attributed-reward file (backfill output)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from pipeline.report.rewards_file import summarize


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="draw attribution pictures (PNG) for an attributed-reward JSON Lines file")
    p.add_argument("--input", required=True, type=Path, help="rewards as written by backfill or consume")
    p.add_argument("--out", type=Path, help="PNG path (default: INPUT with .png)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with open(args.input, "rb") as fh:
        summary = summarize(orjson.loads(line) for line in fh if line.strip())
    out = args.out or args.input.with_suffix(".png")
    from pipeline.report.charts import rewards_report  # matplotlib: only when drawing

    rewards_report(out, summary.per_model, summary.base_currency, summary.delays_hours, summary.kinds)
    for model, totals in summary.per_model.items():
        print(f"{model:<16}" + "  ".join(f"{c} {v:,.2f}" for c, v in sorted(totals.items())))
    print(f"{len(summary.delays_hours):,} paid touchpoints; report: {out}")
    return 0
