"""Faust's own ceiling: a bare agent over both input topics with the worker's App settings and Worker.

No table, no output, no decoding: it iterates, Faust acks, Faust commits. ``--take`` iterates with
``take_events`` batches instead of one event at a time. Run by ``bench.bench_worker`` as a child process;
when it has seen ``--total`` events it writes ``{"events", "first", "last"}`` (wall-clock seconds of the first
and last event) to ``--result`` and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import faust

from pipeline.settings import Settings
from pipeline.stream.faust_runtime import QuietWorker, app_kwargs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--touchpoints", required=True)
    ap.add_argument("--conversions", required=True)
    ap.add_argument("--app-id", required=True)
    ap.add_argument("--datadir", required=True)
    ap.add_argument("--web-port", type=int, required=True)
    ap.add_argument("--total", type=int, required=True)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--take", action="store_true", help="take_events(2000, 0.01) batches")
    ap.add_argument("--cython-optimizations", action="store_true", help="Faust's opt-in repaired fast paths")
    args = ap.parse_args()
    settings = Settings(bootstrap_servers=args.bootstrap, app_id=args.app_id, datadir=args.datadir,
                        web_port=args.web_port, topic_touchpoints=args.touchpoints,
                        topic_conversions=args.conversions, standby_replicas=0)
    app = faust.App(**app_kwargs(settings), **({"cython_optimizations": True} if args.cython_optimizations else {}))
    topic = app.topic(args.touchpoints, args.conversions, key_type=bytes, value_type=bytes)
    seen = {"n": 0, "first": 0.0}

    def count(n: int) -> None:
        if seen["n"] == 0:
            seen["first"] = time.time()
        seen["n"] += n
        if seen["n"] >= args.total:
            args.result.write_text(json.dumps({"events": seen["n"], "first": seen["first"], "last": time.time()}))
            os._exit(0)

    @app.agent(topic, concurrency=1)
    async def bare(stream: Any) -> None:
        if args.take:
            async for batch in stream.take_events(2000, 0.01):
                count(len(batch))
        else:
            async for _event in stream.events():
                count(1)

    QuietWorker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
