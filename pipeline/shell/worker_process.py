"""Run `rewardstream worker` as a child process: for the demo, the benchmarks and the tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from pipeline.ports import free_port
from pipeline.settings import Settings


class WorkerProcess:
    """A worker child with its own web port and state directory, configured through the environment."""

    def __init__(self, settings: Settings, config: Path | None, workdir: Path, name: str,
                 idle_timeout_seconds: int = 5, standby_replicas: int = 0) -> None:
        self.settings = settings
        self.config = config
        self.name = name
        self.datadir = workdir / f"{name}-data"
        self.log = workdir / f"{name}.log"
        self.port = free_port()
        self.idle_timeout_seconds = idle_timeout_seconds
        self.standby_replicas = standby_replicas
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """Every setting as its ``REWARDSTREAM_*`` variable, so the child runs with exactly these settings."""
        s = self.settings.with_overrides(idle_timeout_seconds=self.idle_timeout_seconds,
                                         standby_replicas=self.standby_replicas, datadir=str(self.datadir),
                                         web_port=self.port)
        return {**os.environ, **s.environment()}

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "pipeline.cli.main", "worker"]
        return [*cmd, "--config", str(self.config)] if self.config else cmd

    def start(self) -> WorkerProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET a view, with the worker's web token (or ``token``: "" sends none)."""
        token = self.settings.web_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
            with urllib.request.urlopen(request, timeout=5) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def stats(self) -> dict[str, Any] | None:
        try:
            status, body = self.get("/stats/")
        except OSError:
            return None
        data = orjson.loads(body) if status == 200 else None
        return data if isinstance(data, dict) else None

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def wipe_state(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no worker log)"
