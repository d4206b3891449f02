"""Entry point of the ``rewardstream`` console script."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# Before numpy loads: its arrays here are small, and OpenBLAS's worker threads spin beside the engine after
# any BLAS call, taking CPU from the engine's threads (docs/benchmarks.md). A user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pipeline.cli import (
    backfill_cmd,
    cache_cmd,
    consume_cmd,
    demo_cmd,
    evaluate_cmd,
    fit_cmd,
    ingest_cmd,
    kafka_cmd,
    produce_cmd,
    registry_cmd,
    replay_cmd,
    report_cmd,
    servers_cmd,
    sink_cmd,
    topics_cmd,
    verify_cmd,
    worker_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (kafka_cmd, registry_cmd, topics_cmd, backfill_cmd, fit_cmd, worker_cmd, produce_cmd, consume_cmd,
                   replay_cmd, ingest_cmd, verify_cmd, demo_cmd, evaluate_cmd, report_cmd, servers_cmd, sink_cmd,
                   cache_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("rewardstream.kafka.client").setLevel(logging.ERROR)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
