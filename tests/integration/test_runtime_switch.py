"""Switching a deployment from the Faust runtime to the Kafka runtime on its existing state: half of a log on
Faust, the rest on the Kafka runtime, one worker at a time with the same app id, topics and state directory.
Both runtimes use the same consumer group, committed offsets and journey changelog, so the Kafka runtime picks up
where Faust stopped: the rewards topic then holds the backfill's facts, nothing lost, nothing paid twice.

The way back is not supported (docs/guarantees.md, "Known limits"): Faust's table recovery waits for the record
at the changelog's last offset, and after the Kafka runtime that offset is a transaction marker, never delivered
(faust-streaming issue 47); tried here, the Faust worker never took its partitions."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.stream_harness import (
    RewardReader,
    Worker,
    assert_equal,
    generated_log,
    make_settings,
    produce_lines,
    replaying,
    run_until_complete,
    wait_for,
    write_config,
)


@pytest.mark.timeout(600)
def test_faust_then_the_kafka_runtime_on_the_same_state_equals_the_backfill(kafka_settings: Settings,
                                                                            tmp_path: Path) -> None:
    settings = replaying(make_settings(kafka_settings, f"rs-switch-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines, expected = generated_log(settings, tmp_path, config, users=1500, seed=51)
    half = len(lines) // 2
    reader = RewardReader(settings)
    produce_lines(settings, lines[:half])
    worker = Worker(settings.with_overrides(runtime="faust"), config, tmp_path, "w").start()
    try:
        wait_for(lambda: _events_in(worker) >= half, 180, "the Faust runtime through its half", worker.tail)
        worker.stop()  # SIGTERM: its work committed, its partitions handed over
        assert worker.proc is not None and worker.proc.returncode == 0, worker.tail()
        produce_lines(settings, lines[half:])
        worker = Worker(settings.with_overrides(runtime="kafka"), config, tmp_path, "w").start()
        got = run_until_complete(reader, expected, [worker], timeout=300)
        assert_equal(got, expected)
    finally:
        reader.close()
        worker.stop()


def _events_in(worker: Worker) -> int:
    return int((worker.stats() or {}).get("events_in", 0))
