"""Helpers for tests that run real worker processes against the real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipeline.backfill import run_backfill
from pipeline.cli.common import load_engine_config
from pipeline.compare import Facts, differences, facts
from pipeline.engine import EngineConfig
from pipeline.events.parse import parse_event
from pipeline.kafka import ensure_topics
from pipeline.kafka.reward_reader import RewardReader as TopicReader
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.shell.worker_process import WorkerProcess
from pipeline.synthetic import LogSpec, generate, write_engine_config


def write_config(path: Path) -> Path:
    """The synthetic logs' settings, with a future skew wide enough for the closing events."""
    return write_engine_config(path, max_future_skew_hours=24 * 60)


def file_history(settings: Settings, tmp_path: Path, users: int, seed: int) -> tuple[list[str], EngineConfig, Facts]:
    """The input topics created, a generated log (no closing events), its configuration, and the facts of the
    file backfill of it: what a re-attribution of the topics' history must equal."""
    ensure_topics(settings)
    config = load_engine_config(write_config(tmp_path / "rewardstream.toml"))
    lines = generate(LogSpec(users=users, seed=seed, closing_partitions=0))
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(lines) + "\n")
    run_backfill(log, tmp_path / "file.jsonl", config, progress=False)
    return lines, config, facts(orjson.loads(x) for x in (tmp_path / "file.jsonl").read_bytes().splitlines())


def produce_lines(settings: Settings, lines: list[str]) -> int:
    with EventProducer(settings) as producer:
        return send_lines(producer, lines)


def send_lines(producer: EventProducer, lines: list[str]) -> int:
    """Queue the lines that parse as events (the others are the log's garbage); how many were queued."""
    n = 0
    for line in lines:
        try:
            producer.send(parse_event(orjson.loads(line)))
            n += 1
        except Exception:
            continue
    return n


class Worker(WorkerProcess):
    """The tests' worker: the package's worker child process."""


def replaying(settings: Settings) -> Settings:
    """Settings for a worker fed a months-old log with pauses: the wall clock must not move its event time (after
    a pause of ``idle_timeout``, every later event of such a log would be refused as late)."""
    return settings.with_overrides(max_event_delay_seconds=10 * 365 * 86400)


def make_settings(base: Settings, app_id: str) -> Settings:
    s = base.with_overrides(app_id=app_id)
    ensure_topics(s)
    return s


class RewardReader:
    """Keeps every record of the rewards topic, duplicates included."""

    def __init__(self, settings: Settings) -> None:
        self.reader = TopicReader(settings)
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.records += self.reader.read(min(0.5, deadline - time.monotonic()))

    def close(self) -> None:
        self.reader.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")


class SteadyProducer(threading.Thread):
    """Produces ``lines`` in batches of ``batch`` with ``pause_s`` between them (a steady load of about
    batch / pause_s events a second), through one producer. A batch is sent and flushed while holding ``gate``
    (held by a test while the broker is away, when the flush would time out)."""

    def __init__(self, settings: Settings, lines: list[str], batch: int, pause_s: float,
                 gate: threading.Lock | None = None) -> None:
        super().__init__(daemon=True)
        self.settings, self.lines, self.batch, self.pause_s = settings, lines, batch, pause_s
        self.gate = gate or threading.Lock()
        self.sent = 0

    def run(self) -> None:
        with EventProducer(self.settings) as producer:
            for start in range(0, len(self.lines), self.batch):
                with self.gate:
                    sent = send_lines(producer, self.lines[start:start + self.batch])
                    producer.flush()
                    self.sent += sent
                time.sleep(self.pause_s)


def is_sentinel(user: str) -> bool:
    return user.startswith("sentinel-")


def generated_log(settings: Settings, tmp: Path, config: Path, users: int, seed: int, closing: bool = True
         ) -> tuple[list[str], Facts]:
    """A generated log (months old), ending with closing events unless ``closing`` is False, and the backfill's
    facts for it. Tests that stream such a log in pieces, with pauses between them, are replaying history: they
    close the windows with closing events and tell the worker their events may be that old (see
    ``replaying``), or a pause would let the wall clock finalise what the next piece still changes."""
    lines = generate(LogSpec(users=users, seed=seed, closing_partitions=settings.partitions if closing else 0))
    return lines, backfill_facts(tmp, lines, config)


def backfill_facts(tmp: Path, lines: list[str], config: Path) -> Facts:
    log = tmp / "events.jsonl"
    log.write_text("\n".join(lines) + "\n")
    out = tmp / "backfill.jsonl"
    summary = run_backfill(log, out, load_engine_config(config), progress=False)
    assert summary.rejected == 0, (tmp / "backfill.rejected.jsonl").read_text()[:2000]
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return facts(records, is_sentinel)


def run_until_complete(reader: RewardReader, expected: Facts, workers: list[Worker], timeout: float) -> Facts:
    got = Facts({}, {}, {})

    def complete() -> bool:
        nonlocal got
        reader.poll(2)
        got = facts(reader.records, is_sentinel)
        return len(got.finals) >= len(expected.finals) and len(got.amounts) >= len(expected.amounts)

    def state() -> str:  # at the timeout, not when the wait began: what arrived, and where each worker was
        lines = [f"have {len(got.finals)} of {len(expected.finals)} finals, {len(got.amounts)} of "
                 f"{len(expected.amounts)} rewards; {len(reader.records)} records read",
                 f"differences: {differences(got, expected)[:3]}"]
        for w in workers:
            stats = w.stats() if w.alive() else None
            lines.append(f"--- {w.name} ({'alive' if w.alive() else 'stopped'}) stats: "
                         f"{orjson.dumps(stats).decode() if stats else None}\n{w.tail()}")
        return "\n".join(lines)

    wait_for(complete, timeout, f"all {len(expected.finals)} finals", state)
    return got


def assert_equal(got: Facts, expected: Facts) -> None:
    assert differences(got, expected) == []
