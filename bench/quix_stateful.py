"""Quix Streams baseline: a stateful per-user counter in RocksDB with one output per input.

Standalone on purpose (no ``pipeline`` imports): it runs in a virtualenv of its own, because Quix Streams
pins another confluent-kafka than the project. ``bench.bench_worker`` creates that virtualenv and runs this
script; when ``--total`` outputs are processed it writes ``{"events", "first", "last"}`` to ``--result``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--touchpoints", required=True)
    ap.add_argument("--conversions", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--total", type=int, required=True)
    ap.add_argument("--result", required=True)
    args = ap.parse_args()

    from quixstreams import Application

    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, loglevel="WARNING", consumer_poll_timeout=0.1)
    logging.getLogger().setLevel(logging.WARNING)
    inputs = [app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
              for name in (args.touchpoints, args.conversions)]
    output = app.topic(args.output, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(inputs[0]).concat(app.dataframe(inputs[1]))
    times = {"first": 0.0, "last": 0.0, "n": 0}

    def per_user(value: bytes, state: Any) -> bytes:
        n = (state.get("events") or 0) + 1
        state.set("events", n)
        now = time.time()
        if not times["n"]:
            times["first"] = now
        times["n"] += 1
        times["last"] = now
        return value

    sdf = sdf.apply(per_user, stateful=True)
    sdf.to_topic(output)
    app.run(count=args.total, collect=False)
    with open(args.result, "w") as fh:
        json.dump({"events": times["n"], "first": times["first"], "last": times["last"]}, fh)


if __name__ == "__main__":
    main()
