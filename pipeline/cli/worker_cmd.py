"""``rewardstream worker``: one Faust worker process (agents, RocksDB tables, outbox relay, HTTP)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from pipeline.cli.common import load_engine_config, load_weights
from pipeline.kafka import partition_counts
from pipeline.kafka.topics import project_topics
from pipeline.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a streaming worker (Faust) against Kafka")
    p.add_argument("--config", help="TOML file ([kafka] and [attribution] tables); environment overrides it")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers")
    p.add_argument("--web-port", type=int, help="this worker's HTTP port (each worker needs its own)")
    p.add_argument("--datadir", help="this worker's RocksDB directory (each worker needs its own)")
    p.add_argument("--weights", help="fitted weights for data_driven/shapley")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(handler=run)


def check_topics(settings: Settings) -> str | None:
    """The refusal message when input topics are missing or not co-partitioned, else None."""
    counts = partition_counts(settings, project_topics(settings))
    missing = [t for t, n in counts.items() if n is None]
    if missing:
        return f"topics {missing} do not exist; create them with `rewardstream topics create`"
    if len(set(counts.values())) != 1 or settings.partitions not in counts.values():
        return (f"partition counts disagree: {counts} (configured {settings.partitions}); touchpoints, "
                "conversions and the journey table must have the same count to co-partition by user_id")
    return None


class CleanShutdownGuard:
    """Faust writes a table key to local RocksDB at once and ships its changelog record later, so after a
    crash the local state can hold writes whose changelog records (and so their outbox rewards) never
    reached Kafka. A marker file present at start means the last run did not stop cleanly: the local
    state is then discarded and restored from the changelog, which is consistent with the rewards."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.marker = datadir / "rewardstream.running"

    def previous_run_crashed(self) -> bool:
        return self.marker.exists()

    def discard_local_state(self) -> None:
        for child in self.datadir.iterdir():
            if child != self.marker:
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def mark_running(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(str(os.getpid()))

    def mark_stopped(self) -> None:
        self.marker.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config).with_overrides(
        bootstrap_servers=args.bootstrap, web_port=args.web_port, datadir=args.datadir)
    config = load_engine_config(args.config)
    learned = load_weights(args.weights or config.weights_file)
    problem = check_topics(settings)
    if problem:
        print(f"worker refuses to start: {problem}", file=sys.stderr)
        return 2
    logging.getLogger("rewardstream").setLevel(logging.INFO)
    from faust.worker import Worker

    from pipeline.stream.app import changelog_topic, create_app
    from pipeline.stream.relay import OutboxRelay

    guard = CleanShutdownGuard(Path(settings.datadir))
    if guard.previous_run_crashed():
        print(f"worker: the previous run in {settings.datadir} did not stop cleanly; discarding its local "
              "RocksDB state and restoring it from the changelog", flush=True)
        guard.discard_local_state()
    app, _state = create_app(settings, config, learned)
    relay = OutboxRelay(settings, changelog_topic(settings))
    relay.start()
    guard.mark_running()
    print(f"worker {settings.app_id} on :{settings.web_port}, state in {settings.datadir}", flush=True)
    clean = False
    try:
        Worker(app, loglevel=args.loglevel, quiet=True).execute_from_commandline()
        clean = True
    except SystemExit as exit_:
        clean = exit_.code in (0, None)
    finally:
        relay.stop()
        if clean:
            guard.mark_stopped()
    if relay.error is not None:
        print(f"outbox relay failed: {relay.error}", file=sys.stderr)
        return 1
    return 0
