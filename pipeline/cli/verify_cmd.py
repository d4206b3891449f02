"""``rewardstream verify``: the pipeline checked end to end on a local broker.

A seeded multi-day log (late touchpoints, refunds in four currencies, duplicates, garbage) is validated and
produced to Kafka by the project's producer; a streaming worker (Faust, RocksDB) attributes it; the rewards
topic is read back and checked, fact by fact, against the batch backfill of the same file; then every
attribution model is compared per channel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.backfill import run_backfill
from pipeline.cli.common import BrokerUnavailable, load_engine_config, run_settings
from pipeline.compare import differences, facts
from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import Event
from pipeline.kafka import admin_client
from pipeline.kafka.reward_reader import RewardReader
from pipeline.model_comparison import compare_models
from pipeline.money.exact import from_minor
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.shell.worker_process import WorkerProcess
from pipeline.synthetic import BAD_LINES, LogSpec, generate, write_engine_config


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="check the stream against the backfill on a generated log, end to end")
    p.add_argument("--users", type=int, default=8000, help="simulated users (default 8000, ~70,000 events)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("out/verify"), help="output folder")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting the local broker")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the stream to finish")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics at the end")
    p.set_defaults(handler=run)


def _say(msg: str) -> None:
    print(msg, flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        settings = run_settings("verify", args.bootstrap, _say)
    except BrokerUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    config_path = write_engine_config(out / "rewardstream.toml", max_future_skew_hours=24 * 60)
    config = load_engine_config(config_path)

    # No closing events: once the worker has read everything and its inputs fall silent, the wall clock moves
    # each partition's event time (the log is months old), so every window closes as it does at the end of
    # the backfill.
    lines = generate(LogSpec(users=args.users, seed=args.seed, bad_lines=len(BAD_LINES)))
    log_path = out / "events.jsonl"
    log_path.write_text("\n".join(lines) + "\n")
    _say(f"generated {len(lines):,} events for {args.users:,} users over 30 days -> {log_path}")

    backfill_path = out / "rewards.backfill.jsonl"
    summary = run_backfill(log_path, backfill_path, config, progress=False)
    expected = facts(orjson.loads(line) for line in backfill_path.read_bytes().splitlines())

    worker = WorkerProcess(settings, config_path, out, "worker", idle_timeout_seconds=5).start()
    try:
        events: list[Event] = []
        for line in lines:
            try:
                events.append(parse_event(orjson.loads(line)))
            except (orjson.JSONDecodeError, InvalidEvent):
                continue
        producer = EventProducer(settings)
        t = time.perf_counter()
        for ev in events:
            producer.send(ev)
        producer.close()
        _say(f"produced {len(events):,} events in {time.perf_counter() - t:.1f}s (Avro, keyed by user_id, "
             f"murmur2); the producer refused {len(lines) - len(events)} invalid lines")
        stream_path = out / "rewards.stream.jsonl"
        records = _follow(settings, worker, expected, stream_path, args.timeout)
    finally:
        worker.stop()
    got = facts(records)
    problems = differences(got, expected)
    _say(f"stream equals backfill: {'yes' if not problems else 'NO'} "
         f"({len(got.amounts):,} conversion-touchpoint amounts, {len(got.finals):,} finals, "
         f"{len(got.unattributed):,} conversions that paid nobody)")
    for problem in problems:
        _say(f"  {problem}")

    _compare_models(events, config, out)
    _say("")
    for line in summary.lines():
        _say(line)
    _say(f"stream rewards: {stream_path}\nbackfill rewards: {backfill_path}\n"
         f"rejected lines with reasons: {out / 'rewards.backfill.rejected.jsonl'}\nworker log: {worker.log}")
    if not args.keep_topics:
        admin_client(settings).delete_topics([settings.topic_touchpoints, settings.topic_conversions,
                                              settings.topic_rewards, settings.topic_dead_letters])
    _say(f"verify finished in {time.perf_counter() - started:.0f}s; output in {out}")
    return 0 if records and not problems else 1


def _follow(settings: Settings, worker: WorkerProcess, expected: Any, path: Path, timeout: float
            ) -> list[dict[str, Any]]:
    """Read the rewards topic until every expected final arrived, printing the worker's progress."""
    reader = RewardReader(settings)
    records: list[dict[str, Any]] = []
    finals: set[tuple[str, str]] = set()
    deadline = time.monotonic() + timeout
    last_print = 0.0
    try:
        with open(path, "wb") as fh:
            while len(finals) < len(expected.finals) and time.monotonic() < deadline:
                for record in reader.read(0.5):
                    records.append(record)
                    fh.write(orjson.dumps(record) + b"\n")
                    if record["kind"] == "final":
                        finals.add((record["user_id"], record["touchpoint_id"]))
                if time.monotonic() - last_print > 3:
                    last_print = time.monotonic()
                    s = worker.stats() or {}
                    lag = s.get("watermark_lag_seconds")
                    _say(f"  worker: {s.get('events_in', 0):>8,} events in, "
                         f"{s.get('conversions_attributed', 0):>6,} conversions attributed, watermark lag "
                         f"{lag / 3600 if lag else 0:>7.1f} h; rewards read {len(records):>8,}, "
                         f"finals {len(finals):,}/{len(expected.finals):,}")
                    if not worker.alive():
                        raise RuntimeError(f"the worker exited:\n{worker.tail()}")
    finally:
        reader.close()
    return records


def _compare_models(events: list[Event], config: Any, out: Path) -> None:
    """Every model over the same events (learned models fitted first), attributed value per channel."""
    per_model, learned = compare_models(events, config)
    weights_path = out / "attribution-weights.json"
    weights_path.write_text(json.dumps(learned.to_json(), indent=2) + "\n")
    channels = sorted({c for t in per_model.values() for c in t})
    base = config.rates.base
    _say(f"\nattributed value per channel ({base}, net of refunds; learned weights from {learned.journeys:,} "
         f"journeys -> {weights_path.name})")
    _say(f"{'model':<16}" + "".join(f"{c:>12}" for c in channels))
    for model, totals in per_model.items():
        _say(f"{model:<16}" + "".join(f"{from_minor(totals.get(c, 0), base):>12,.2f}" for c in channels))
