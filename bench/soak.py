"""Soak: at least a million events through one worker, every fact compared with the backfill. Not part of CI.

A generated month-long log (late events, duplicates, refunds, conversions with nobody to pay) without closing
events, so the last windows are closed by the wall clock once the inputs are idle, as in production. The
backfill of the same file gives the expected facts: the latest revision of every (conversion, touchpoint)
pair, every touchpoint's final total, every conversion that paid nobody. Prints the figures and every
difference; exits 1 on any.

    python -m bench.soak                      # ~1.0 M events on the local broker (started if needed)
    python -m bench.soak --users 30000        # shorter
    python -m bench.soak --runtime kafka      # the Kafka-native runtime
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from pipeline.backfill import run_backfill
from pipeline.cli.common import load_engine_config
from pipeline.cli.worker_cmd import RUNTIMES
from pipeline.compare import differences, facts
from pipeline.events.parse import parse_event
from pipeline.kafka import ensure_topics
from pipeline.kafka.reward_reader import RewardReader
from pipeline.local_kafka import LocalKafka
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.shell.worker_process import WorkerProcess
from pipeline.synthetic import LogSpec, generate, write_engine_config


def say(line: str) -> None:
    print(line, flush=True)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=120_000, help="users in the generated log (~8.5 events each)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--bootstrap", help="Kafka (default: the local broker, started if needed)")
    ap.add_argument("--engine", default="native", choices=("native", "python"))
    ap.add_argument("--runtime", default="faust", choices=RUNTIMES)
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()

    bootstrap = args.bootstrap or LocalKafka().start()[0].bootstrap
    assert bootstrap
    run = uuid.uuid4().hex[:8]
    settings = Settings(bootstrap_servers=bootstrap, app_id=f"rewardstream-soak-{run}",
                        topic_touchpoints=f"soak.{run}.touchpoints", topic_conversions=f"soak.{run}.conversions",
                        topic_rewards=f"soak.{run}.rewards", topic_dead_letters=f"soak.{run}.dead-letters",
                        engine=args.engine, runtime=args.runtime)
    ensure_topics(settings)
    with tempfile.TemporaryDirectory(prefix="rewardstream-soak-") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        lines = generate(LogSpec(users=args.users, seed=args.seed))
        log = tmp / "events.jsonl"
        log.write_text("\n".join(lines) + "\n")
        config_path = write_engine_config(tmp / "rewardstream.toml")
        config = load_engine_config(config_path)
        summary = run_backfill(log, tmp / "backfill.jsonl", config, progress=False)
        expected = facts(orjson.loads(x) for x in (tmp / "backfill.jsonl").read_bytes().splitlines())
        say(f"log: {len(lines):,} events, {args.users:,} users; backfill {summary.seconds:.1f} s: "
            f"{len(expected.amounts):,} amounts, {len(expected.finals):,} finals, "
            f"{len(expected.unattributed):,} unattributed ({time.perf_counter() - t:.0f} s)")

        t = time.perf_counter()
        producer = EventProducer(settings)
        for line in lines:
            producer.send(parse_event(orjson.loads(line)))
        producer.close()
        say(f"produced {len(lines):,} events in {time.perf_counter() - t:.1f} s")

        worker = WorkerProcess(settings, config_path, tmp, "soak", idle_timeout_seconds=30).start()
        reader = RewardReader(settings)
        records: list[dict[str, object]] = []
        finals: set[tuple[object, object]] = set()
        started = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        peak_rss = 0.0
        last = 0.0
        processed_at: float | None = None
        try:
            while len(finals) < len(expected.finals) and time.monotonic() < deadline:
                for r in reader.read(1.0):
                    records.append(r)
                    if r["kind"] == "final":
                        finals.add((r["user_id"], r["touchpoint_id"]))
                if not worker.alive():
                    say(f"the worker exited:\n{worker.tail()}")
                    return 1
                assert worker.proc is not None
                peak_rss = max(peak_rss, rss_mib(worker.proc.pid))
                stats = worker.stats() or {}
                if processed_at is None and stats.get("events_in", 0) >= len(lines):
                    processed_at = time.perf_counter() - started
                if time.monotonic() - last > 15:
                    last = time.monotonic()
                    say(f"  {time.perf_counter() - started:6.0f} s: worker {stats.get('events_in', 0):,} events in; "
                        f"rewards read {len(records):,}, finals {len(finals):,}/{len(expected.finals):,}; "
                        f"RSS {peak_rss:.0f} MiB")
            total = time.perf_counter() - started
            stats = worker.stats() or {}
        finally:
            reader.close()
            worker.stop()
    got = facts(records)
    problems = differences(got, expected)
    rate = len(lines) / processed_at if processed_at else float("nan")
    say(f"worker ({args.runtime} runtime, {args.engine} engine): all {len(lines):,} events in after "
        f"{processed_at or float('nan'):.0f} s "
        f"({rate:,.0f} events/s incl. start-up); every final out after {total:.0f} s; peak RSS {peak_rss:.0f} MiB")
    say(f"rewards read {len(records):,} ({len(records) - len({r['reward_id'] for r in records}):,} redelivered); "
        f"rejected {stats.get('rejected', '?')}, duplicates {stats.get('duplicates', '?')}")
    say(f"compared with the backfill: {len(got.amounts):,} amounts, {len(got.finals):,} finals, "
        f"{len(got.unattributed):,} unattributed: " + ("IDENTICAL" if not problems else "DIFFERENT"))
    for p in problems:
        say(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
