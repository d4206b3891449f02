"""The worker's state directory on a small filesystem that fills up mid-stream (a tmpfs this test mounts).

The worker must stop loudly: exit with the fatal code and say which store could not be written and why, instead
of carrying on with a store that no longer takes writes. It commits nothing that is not in its changelog (the
state's log; the local store is always a prefix of it), so once space is freed and it restarts on the same
directory, the store is restored from the changelog and the rewards equal the backfill's: nothing lost, nothing
paid twice. Both runtimes. Skipped, with the reason, where a tmpfs cannot be mounted (mounting needs root)."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.shell.failure import EXIT_FATAL
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

TMPFS_MB = 64
WRITE_BUFFER_MB = 1  # small memtables over few partitions: the stores write files (and meet the full disk) soon
PARTITIONS = 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> int:
    """Write a file until the filesystem refuses (ENOSPC); the bytes it took."""
    written = 0
    with open(directory / "filler", "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += f.write(block) or 0
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return written


@pytest.mark.timeout(600)
@pytest.mark.parametrize("runtime", ["faust", "kafka"])
def test_a_full_state_disk_stops_the_worker_and_a_restart_loses_nothing(
        kafka_settings: Settings, small_disk: Path, tmp_path: Path, runtime: str) -> None:
    settings = replaying(make_settings(
        kafka_settings.with_overrides(runtime=runtime, rocksdb_write_buffer_mb=WRITE_BUFFER_MB, partitions=PARTITIONS),
        f"rs-disk-{runtime}-{uuid.uuid4().hex[:8]}"))
    config = write_config(tmp_path / "rewardstream.toml")
    lines, expected = generated_log(settings, tmp_path, config, users=3000, seed=14)
    half = len(lines) // 2
    produce_lines(settings, lines[:half])
    worker = Worker(settings, config, tmp_path, "w1")
    worker.datadir = small_disk / "w1-data"  # the state on the small disk, the log beside the test
    reader = RewardReader(settings)
    try:
        worker.start()
        wait_for(lambda: (worker.stats() or {}).get("events_in", 0) >= half, 180, "the first half", worker.tail)
        taken = fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0
        produce_lines(settings, lines[half:])
        assert worker.proc is not None
        try:
            code = worker.proc.wait(120)
        except subprocess.TimeoutExpired:
            files = sorted(f"{f.name} {f.stat().st_size}" for f in (worker.datadir / "journeys").rglob("*")
                           if f.is_file())
            pytest.fail(f"the worker went on with a full state disk ({taken} bytes of filler)\nstats: "
                        f"{worker.stats()}\nstate files: {files}\n{worker.tail()}")
        log = worker.log.read_text(errors="replace")
        assert code == EXIT_FATAL, worker.tail()
        assert "could not be written" in log and "No space left on device" in log, worker.tail()
        (small_disk / "filler").unlink()  # space again; the same state directory
        worker.start()
        got = run_until_complete(reader, expected, [worker], timeout=420)
        assert_equal(got, expected)
    finally:
        reader.close()
        worker.stop()
