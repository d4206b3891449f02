"""`rewardstream kafka start|status|stop|address` on its own broker instance, including a killed broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.local_kafka import LocalKafka
from pipeline.local_kafka.broker import _pid_alive
from pipeline.ports import free_port


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", "kafka", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def instance() -> tuple[str, int]:
    name = f"clitest-{os.getpid()}"
    yield name, free_port()  # type: ignore[misc]
    cli("stop", "--purge", "--instance", name)
    assert not LocalKafka(instance=name).home.exists()


def test_start_twice_status_kill_restart_stop(instance: tuple[str, int]) -> None:
    name, port = instance
    first = cli("start", "--instance", name, "--port", str(port))
    assert first.returncode == 0, first.stderr
    assert f"127.0.0.1:{port}" in first.stdout and "started" in first.stdout

    again = cli("start", "--instance", name, "--port", str(port))
    assert again.returncode == 0 and "already running" in again.stdout

    status = cli("status", "--instance", name)
    assert status.returncode == 0 and "running on" in status.stdout
    assert cli("address", "--instance", name).stdout.strip() == f"127.0.0.1:{port}"

    pid = LocalKafka(instance=name).status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    dead = cli("status", "--instance", name)
    assert dead.returncode == 1 and "dead" in dead.stdout and "killed" in dead.stdout

    # without --port the instance comes back on its own port, so its clients are not stranded
    restarted = cli("start", "--instance", name)
    assert restarted.returncode == 0 and "started" in restarted.stdout, restarted.stderr
    assert f"127.0.0.1:{port}" in restarted.stdout
    assert cli("address", "--instance", name).stdout.strip() == f"127.0.0.1:{port}"
    stopped = cli("stop", "--instance", name)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert cli("status", "--instance", name).returncode == 1


def test_a_taken_port_fails_clearly(instance: tuple[str, int]) -> None:
    import socket

    name, _ = instance
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        result = cli("start", "--instance", name, "--port", str(taken))
    assert result.returncode == 2
    assert f"port {taken}" in result.stderr and "taken" in result.stderr
