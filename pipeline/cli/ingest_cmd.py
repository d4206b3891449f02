"""``rewardstream ingest``: conversion feeds from a file, or an HTTP endpoint for feeds that post them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.cli.common import add_kafka_arguments, kafka_settings, wire_flags
from pipeline.errors import InvalidEvent
from pipeline.ingest.conversions_file import IngestSummary, detect_format, parse_row, rows
from pipeline.producers import DeliveryError, EventProducer


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="conversion feeds: a file, or an HTTP endpoint")
    kinds = p.add_subparsers(dest="ingest_kind", required=True)
    f = kinds.add_parser("conversions", help="publish conversions from a JSON Lines or CSV file")
    f.add_argument("file", type=Path)
    f.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name (.csv, else jsonl)")
    f.add_argument("--rejected", type=Path, help="rejected lines go here (default: FILE.rejected.jsonl)")
    f.add_argument("--quiet", action="store_true")
    add_kafka_arguments(f)
    f.set_defaults(handler=run_file)
    s = kinds.add_parser("serve", help="serve POST /conversions (bearer token: REWARDSTREAM_INGEST_TOKEN)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default loopback; 0.0.0.0 to serve other hosts)")
    s.add_argument("--port", type=int, help="default: the ingest_port setting")
    add_kafka_arguments(s)
    s.set_defaults(handler=run_serve)


def run_file(args: argparse.Namespace) -> int:
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    fmt = detect_format(args.file, args.format)
    rejected_path = args.rejected or args.file.with_name(args.file.name + ".rejected.jsonl")
    summary = IngestSummary()
    producer = EventProducer(settings)
    bar: Any = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(args.file), unit="B", unit_scale=True, desc="ingest", leave=False)
    try:
        with open(args.file, "rb") as fh, open(rejected_path, "wb") as rejected:
            for number, raw, obj in rows(fh, fmt):
                summary.read += 1
                if bar is not None:
                    bar.update(len(raw) + 1)
                try:
                    producer.send(parse_row(obj))
                    summary.sent += 1
                except InvalidEvent as exc:
                    summary.rejected += 1
                    rejected.write(orjson.dumps({"line": number, "field": exc.field, "reason": exc.reason,
                                                 "raw": raw.decode("utf-8", "replace").rstrip("\n")}) + b"\n")
    except InvalidEvent as exc:  # an unusable CSV header: nothing can be read
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    try:
        producer.close()
    except DeliveryError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    if summary.rejected == 0:
        rejected_path.unlink(missing_ok=True)
    print(f"ingested {summary.sent:,} of {summary.read:,} conversions to {settings.topic_conversions}"
          + (f"; {summary.rejected:,} rejected, see {rejected_path}" if summary.rejected else ""))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from pipeline.ingest.http_endpoint import build_app
    from pipeline.kafka.topics import ensure_topics
    from pipeline.shell import outages

    outages.install()  # a broker outage: one line when it goes, repeated client errors held back
    settings = kafka_settings(args.config, args.bootstrap, **wire_flags(args))
    ensure_topics(settings)
    producer = EventProducer(settings)
    try:
        app = build_app(settings, producer)
    except ValueError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    try:
        web.run_app(app, host=args.host, port=args.port or settings.ingest_port, print=None)
    finally:
        producer.close()
    return 0
