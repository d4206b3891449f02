"""Scale-out, proven locally: three worker processes share 12-partition topics under a load of more than
100,000 events; one is killed with kill -9 mid-run and replaced by a new worker with an empty disk. The
rewards topic still equals the backfill of the same events, fact by fact."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from pipeline.cli.worker_cmd import RUNTIMES
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


@pytest.mark.timeout(900)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_three_workers_twelve_partitions_one_killed_and_replaced(kafka_settings: Settings, tmp_path: Path,
                                                                 runtime: str) -> None:
    settings = replaying(make_settings(kafka_settings.with_overrides(partitions=12, runtime=runtime),
                                       f"rs-scale-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines, expected = generated_log(settings, tmp_path, config, users=11_500, seed=31)
    assert len(lines) >= 100_000, len(lines)

    workers = [Worker(settings, config, tmp_path, f"w{i}").start() for i in (1, 2, 3)]
    reader = RewardReader(settings)
    started = time.monotonic()
    try:
        half = len(lines) // 2
        produce_lines(settings, lines[:half])
        # (a worker lists a partition once it has processed an event of it)
        wait_for(lambda: sum(len((w.stats() or {}).get("partitions", [])) > 0 for w in workers) == 3, 180,
                 "12 partitions spread over three workers", lambda: "\n".join(w.tail() for w in workers))
        wait_for(lambda: sum((w.stats() or {}).get("events_in", 0) for w in workers) > half // 2, 300,
                 "the workers to be well into the load", lambda: "\n".join(w.tail() for w in workers))
        victim = workers[1]
        owned = (victim.stats() or {}).get("partitions", [])
        assert owned, "the victim owned partitions"
        victim.kill()  # kill -9 mid-run: no commit, no flush
        workers.append(Worker(settings, config, tmp_path, "w4").start())  # a replacement with an empty disk
        produce_lines(settings, lines[half:])
        got = run_until_complete(reader, expected, workers, timeout=720)
        assert_equal(got, expected)
        live = [w for w in workers if w.alive()]
        assert len(live) == 3
        partitions = sorted(p for w in live for p in (w.stats() or {}).get("partitions", []))
        assert partitions == list(range(12)), partitions
        print(f"scale-out ({runtime} runtime): {len(lines):,} events, {len(expected.finals):,} finals, "
              f"{time.monotonic() - started:.0f} s with a kill -9 and a replacement")
    finally:
        reader.close()
        for w in workers:
            w.stop()
