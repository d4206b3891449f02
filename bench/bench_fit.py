"""`rewardstream fit`'s work on a generated log of about 219k events: the engine completes the journeys, then the
Markov chain (order 1, and order chosen on held-out journeys) and the Shapley statistics are fitted. Both engines,
one run; the figures are this machine's.

    python -m bench.bench_fit [--users 24800]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# As `rewardstream fit` runs it: the CLI sets this before numpy loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pipeline.attribution.fitting import fit, fit_delay
from pipeline.backfill.journeys import paths_of_log
from pipeline.cli.common import load_engine_config
from pipeline.native import available
from pipeline.synthetic import LogSpec, generate, write_engine_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=24800)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="native,python", help="comma-separated (default: native,python)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        log = tmp / "events.jsonl"
        lines = generate(LogSpec(users=args.users, seed=7))
        log.write_text("\n".join(lines) + "\n")
        config = load_engine_config(write_engine_config(tmp / "c.toml"))
        print(f"fit benchmark: {len(lines):,} events ({args.users:,} users); best of {args.repeats}")
        for engine in [e for e in args.engines.split(",") if e != "native" or available()]:
            for order in ("1", "auto"):
                best, split = float("inf"), (0.0, 0.0, 0.0)
                for _ in range(args.repeats if engine == "native" else 1):
                    t = time.perf_counter()
                    paths, _, _ = paths_of_log(log, config, engine)
                    t_journeys = time.perf_counter() - t
                    weights = fit(paths, 100, order=order)
                    t_delay = time.perf_counter()
                    fit_delay(paths, config.max_window_ms, config.rates.base)
                    delay = time.perf_counter() - t_delay
                    total = time.perf_counter() - t
                    if total < best:
                        best, split = total, (t_journeys, total - t_journeys - delay, delay)
                counts = paths.counts()
                print(f"  {engine:>6} engine, order {order:>4}: {best:6.2f} s (journeys {split[0]:.2f} s, models "
                      f"{split[1]:.2f} s, delay model {split[2]:.3f} s)", flush=True)
        print(f"  journeys: {counts['converted']:,} converted, {counts['not_converted']:,} not, "
              f"{counts['censored']:,} censored; order auto chose {weights.markov_order}")


if __name__ == "__main__":
    main()
