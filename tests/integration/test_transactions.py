"""The Kafka runtime's exactly-once delivery against the real broker: a worker killed between a transaction's
produce and its commit, a second worker with the same transactional id, and inputs merged in time order."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka.reward_reader import RewardReader as TopicReader
from pipeline.settings import Settings
from tests.integration.stream_harness import (
    RewardReader,
    Worker,
    assert_equal,
    generated_log,
    is_sentinel,
    make_settings,
    produce_lines,
    replaying,
    run_until_complete,
    wait_for,
    write_config,
)


@pytest.fixture
def kafka_runtime(kafka_settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    settings = make_settings(kafka_settings.with_overrides(runtime="kafka"), f"rs-eos-{uuid.uuid4().hex[:8]}")
    return settings, write_config(tmp_path / "rewardstream.toml")


def _ids(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["reward_id"] for r in records)


def _read_all(reader: TopicReader, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = reader.read(seconds)
        if not got:
            return out
        out += got


@pytest.mark.timeout(600)
def test_a_kill_between_produce_and_commit_shows_every_reward_once(kafka_runtime: tuple[Settings, Path],
                                                                  tmp_path: Path) -> None:
    """kill -9 while a transaction is open: its records are on the topic (a read_uncommitted reader sees them)
    but never committed; the restarted worker does the work again, and a read_committed reader sees every reward
    exactly once, with the backfill's facts."""
    settings, config = kafka_runtime
    settings = replaying(settings).with_overrides(commit_interval_ms=2000)  # transactions open long enough
    # enough work that the worker is busy for seconds, transactions open all along, when it is killed
    lines, expected = generated_log(settings, tmp_path, config, users=12000, seed=31)
    produce_lines(settings, lines)
    worker = Worker(settings, config, tmp_path, "w1").start()
    committed = RewardReader(settings)
    uncommitted = TopicReader(settings, **{"isolation.level": "read_uncommitted"})
    try:
        aborted = 0
        everything: list[dict[str, Any]] = []  # what a read_uncommitted reader has seen: aborted records too
        for _ in range(3):  # a kill right after a commit leaves nothing open: kill again
            wait_for(lambda: (worker.stats() or {}).get("events_in", 0) > 0, 120, "progress", worker.tail)
            worker.kill()
            committed.poll(3)
            everything += _read_all(uncommitted, 3)
            aborted = len(everything) - len(committed.records)
            worker.start()
            if aborted > 0:
                break
        assert aborted > 0, "no kill landed inside an open transaction"
        got = run_until_complete(committed, expected, [worker], timeout=420)
        assert_equal(got, expected)
        repeated = {i: n for i, n in _ids(committed.records).items() if n > 1}
        assert not repeated, f"rewards seen more than once by a read_committed reader: {list(repeated)[:5]}"
    finally:
        committed.close()
        uncommitted.close()
        worker.stop()


@pytest.mark.timeout(600)
def test_a_second_worker_with_the_same_transactional_id_fences_the_first(kafka_runtime: tuple[Settings, Path],
                                                                       tmp_path: Path) -> None:
    settings, config = kafka_runtime
    settings = replaying(settings).with_overrides(transactional_id=f"fence-{uuid.uuid4().hex[:6]}")
    lines, expected = generated_log(settings, tmp_path, config, users=2000, seed=32)
    produce_lines(settings, lines)
    first = Worker(settings, config, tmp_path, "first").start()
    reader = RewardReader(settings)
    try:
        wait_for(lambda: (first.stats() or {}).get("rewards_out", 0) > 0, 120, "progress", first.tail)
        second = Worker(settings, config, tmp_path, "second").start()
        wait_for(lambda: not first.alive(), 120, "the first worker to stop", first.tail)
        assert first.proc is not None and first.proc.returncode == 3
        assert "transactional id" in first.tail(), first.tail()
        got = run_until_complete(reader, expected, [second], timeout=420)
        assert_equal(got, expected)
        assert not [i for i, n in _ids(reader.records).items() if n > 1]
    finally:
        reader.close()
        first.stop()
        second.stop()


@pytest.mark.timeout(600)
def test_an_in_order_log_says_no_conversion_unattributed_first(kafka_runtime: tuple[Settings, Path],
                                                              tmp_path: Path) -> None:
    """Conversions read before the touchpoints that precede them wait for them: on a log produced in order,
    every conversion the backfill attributes is attributed in its first record, never first published as
    ``unattributed``."""
    settings, config = kafka_runtime
    settings = replaying(settings)
    lines, expected = generated_log(settings, tmp_path, config, users=4000, seed=33)
    produce_lines(settings, lines)
    worker = Worker(settings, config, tmp_path, "w1").start()
    reader = RewardReader(settings)
    try:
        run_until_complete(reader, expected, [worker], timeout=420)
        first_kind: dict[tuple[str, str], str] = {}
        for r in reader.records:
            if r["kind"] in ("attribution", "unattributed") and not is_sentinel(r["user_id"]):
                first_kind.setdefault((r["user_id"], r["conversion_id"]), r["kind"])
        attributed = {k for k, kind in first_kind.items() if kind == "attribution"}
        unattributed_first = [k for k, kind in first_kind.items()
                              if kind == "unattributed" and k not in set(expected.unattributed)]
        assert attributed and not unattributed_first, unattributed_first[:5]
    finally:
        reader.close()
        worker.stop()
