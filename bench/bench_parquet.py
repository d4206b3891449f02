"""The backfill to Parquet against the backfill to JSON Lines, on one generated log (about 1 M events by
default), runs alternated; and the Parquet writer alone over the JSON Lines output (pyarrow's JSON reader and
the Parquet encoder, no engine). Prints figures, asserts nothing; docs/benchmarks.md has the recorded ones.

    flock /tmp/rewardstream-bench.lock .venv/bin/python -m bench.bench_parquet [--users 114000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.backfill import run_backfill
from pipeline.cli.common import load_engine_config
from pipeline.sinks import FORMATS
from pipeline.sinks.parquet import ParquetRewards
from pipeline.synthetic import LogSpec, generate, write_engine_config


def writer_alone(jsonl: Path, out: Path) -> float:
    """Seconds for the Parquet writer to take the JSON Lines file in 1 MiB reads, as the pipe hands them."""
    started = time.perf_counter()
    sink = ParquetRewards(out)
    with open(jsonl, "rb") as src:
        while data := src.read(1 << 20):
            sink.write(data)
    sink.close()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=114_000, help="generated users (114,000: about 1 M events)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each format, alternated")
    ap.add_argument("--engine", default="native")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "events.jsonl"
        log.write_text("\n".join(generate(LogSpec(users=args.users, seed=11))) + "\n")
        config = load_engine_config(write_engine_config(tmp / "config.toml"))
        os.sync()  # the input on disk, not dirty pages written back during the first run
        rates: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        events = rewards = 0
        for _ in range(args.runs):
            for fmt in FORMATS:
                out = tmp / f"rewards.{fmt}"
                summary = run_backfill(log, out, config, progress=False, engine=args.engine, fmt=fmt)
                events, rewards = summary.events_in, summary.rewards_out
                rates[fmt].append(summary.events_in / summary.seconds)
                os.sync()
        sizes = {fmt: (tmp / f"rewards.{fmt}").stat().st_size for fmt in FORMATS}
        alone = [writer_alone(tmp / "rewards.jsonl", tmp / "alone.parquet") for _ in range(args.runs)]
    print(f"backfill of {events:,} events ({rewards:,} rewards), {args.engine} engine, {args.runs} runs each, "
          "alternated:")
    for fmt in FORMATS:
        figures = ", ".join(f"{r:,.0f}" for r in rates[fmt])
        print(f"  {fmt:8s} median {statistics.median(rates[fmt]):>9,.0f} events/s ({figures}); "
              f"output {sizes[fmt] / 1e6:,.0f} MB")
    ratio = statistics.median(rates["parquet"]) / statistics.median(rates["jsonl"])
    print(f"  parquet / jsonl: {ratio:.2f}")
    mb = sizes["jsonl"] / 1e6
    print(f"Parquet writer alone over the {mb:,.0f} MB of reward lines: median {statistics.median(alone):.2f} s "
          f"({mb / statistics.median(alone):,.0f} MB/s of JSON, {rewards / statistics.median(alone):,.0f} rewards/s)")


if __name__ == "__main__":
    main()
