"""Producers → worker → ReplayBuffer on the real broker: every experience's corrected reward equals what
the backfill computes for the same events, through a trainer killed with kill -9 mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from pipeline.backfill import run_backfill
from pipeline.cli.common import load_engine_config
from pipeline.events.jsonl import reward_from_json
from pipeline.events.types import RewardKind
from pipeline.kafka import consumer_config
from pipeline.replay import ReplayBuffer, fold_rewards
from pipeline.settings import Settings
from pipeline.synthetic import LogSpec, generate
from tests.integration.stream_harness import (
    Worker,
    make_settings,
    produce_lines,
    replaying,
    wait_for,
    write_config,
)


def _expected(tmp: Path, lines: list[str], config: Path) -> tuple[dict[str, int], dict[str, int], int]:
    """(attributed total per touchpoint, final amount per touchpoint, conversions attributed)."""
    log = tmp / "events.jsonl"
    log.write_text("\n".join(lines) + "\n")
    out = tmp / "backfill.jsonl"
    run_backfill(log, out, load_engine_config(config), progress=False)
    rewards = [reward_from_json(orjson.loads(x)) for x in out.read_bytes().splitlines()]
    conversions = len({r.conversion_id for r in rewards if r.kind == RewardKind.ATTRIBUTION})  # closing ones too
    rewards = [r for r in rewards if not r.user_id.startswith("sentinel-")]
    finals = {r.touchpoint_id: r.amount_minor for r in rewards if r.kind == RewardKind.FINAL}
    return fold_rewards(rewards), finals, conversions


def _trainer(settings: Settings, path: Path, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REWARDSTREAM_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "REWARDSTREAM_TOPIC_TOUCHPOINTS": settings.topic_touchpoints,
           "REWARDSTREAM_TOPIC_REWARDS": settings.topic_rewards}
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "replay", "--group", group,
                                 "--path", str(path), "--every", "0.5"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _last_stats(log: Path) -> dict[str, int]:
    lines = [x for x in log.read_bytes().splitlines() if x.startswith(b"{")]
    return orjson.loads(lines[-1]) if lines else {"rewards_applied": 0}


@pytest.mark.timeout(600)
def test_replay_buffer_matches_backfill_through_a_trainer_crash(kafka_settings: Settings, tmp_path: Path) -> None:
    # a months-old log in two halves with a pause between them (the trainer's crash): see `replaying`
    settings = replaying(make_settings(kafka_settings, f"rs-replay-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines = generate(LogSpec(users=1500, seed=23, closing_partitions=settings.partitions))
    totals, finals, conversions = _expected(tmp_path, lines, config)
    assert len(finals) > 3000 and conversions > 300

    # No input may count as idle during the pause either: an input that resumes while the other is still taken
    # for idle lets the first run the watermark past the other's backlog (see the closing events instead).
    worker = Worker(settings, config, tmp_path, "w1", idle_timeout_seconds=3600).start()
    store, group, log = tmp_path / "replay-db", f"trainer-{uuid.uuid4().hex[:6]}", tmp_path / "trainer.log"
    trainer = _trainer(settings, store, group, log)
    try:
        half = len(lines) // 2
        produce_lines(settings, lines[:half])
        # Kill the trainer once it has applied a good share of what is flowing, not before.
        wait_for(lambda: _last_stats(log)["rewards_applied"] > 2000, 180, "the trainer to apply rewards",
                 lambda: log.read_text(errors="replace")[-3000:] + worker.tail())
        os.killpg(trainer.pid, signal.SIGKILL)
        trainer.wait(30)
        before_crash = _last_stats(log)
        produce_lines(settings, lines[half:])

        with ReplayBuffer(settings, group=group, path=store, capacity=200_000, seed=1) as buffer:
            restored = len(buffer)
            assert restored >= 1000, "the restarted trainer gets its experiences back"

            def complete() -> bool:
                return buffer.table.n_final >= len(finals) + 0 and buffer.caught_up()

            def state() -> str:  # at the time of a failure: which of the conditions held, and where the worker was
                return (f"buffer: {buffer.table.n_final} finals, caught up {buffer.caught_up()}, "
                        f"{buffer.statistics()['rewards_applied']} rewards applied; produced {len(lines)} events; "
                        f"worker stats: {worker.stats()}\n{worker.tail()}")

            wait_for(complete, 300, f"{len(finals)} final experiences (restored {buffer.table.n_final})", state)
            time.sleep(2)  # anything still in flight would show as a mismatch below
            stats = buffer.statistics()
            for tid, final_minor in finals.items():
                row = buffer.experience(tid)
                assert row is not None, tid
                assert row["attributed_minor"] == totals.get(tid, 0), (tid, row["pairs"])
                assert row["final"] and row["final_minor"] == final_minor, tid
            assert stats["conversions_attributed"] == conversions  # none lost, none counted twice
            assert stats["pending_rewards"] == 0 and stats["skipped_records"] == 0
            assert stats["rewards_applied"] >= before_crash["rewards_applied"]

            # The group's committed offsets show its lag to ordinary Kafka monitoring.
            from confluent_kafka import Consumer, TopicPartition

            probe = Consumer(consumer_config(settings, buffer.group))
            parts = [TopicPartition(settings.topic_rewards, p) for p in range(settings.partitions)]
            high = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]

            def committed_to_the_end() -> bool:
                return [tp.offset for tp in probe.committed(parts, timeout=10)] == high

            wait_for(committed_to_the_end, 30, "the buffer's group offsets to reach the end of the rewards topic")
            probe.close()

            batch = buffer.sample(512, final_only=True, with_ids=True)
            expected = np.array([totals.get(t, 0) for t in batch["touchpoint_ids"]]) / 100.0
            np.testing.assert_allclose(batch["attributed_reward"], expected)
            assert batch["final"].all() and batch["states"].dtype == np.float32
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGKILL)
        worker.stop()
