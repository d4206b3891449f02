"""What the local PostgreSQL and Redis servers share: an instance folder with a pid file and the address,
detached start, a wait until the server answers, stop by signal.

Root: PostgreSQL refuses to run as root. As root, a server is started inside a user namespace where the
process is an unprivileged user mapped to root outside (``unshare --user --map-user``): it may read and
write the instance folder root owns (under a home directory no other account can enter) and needs no system
account created. Redis runs as root unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.local_kafka.broker import _pid_alive, _port_free, default_cache_dir
from pipeline.ports import free_port

NAMESPACE_UID = 1000  # the unprivileged id a server runs as inside its user namespace when started by root


class LocalServerError(RuntimeError):
    """A local server could not be found, started or reached; the message says why."""


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    address: str | None  # a URL: postgresql://... or redis://...
    detail: str


class ServerHome:
    """One instance's folder: ``server.pid``, ``server.json`` (port, address) and ``server.log``."""

    def __init__(self, kind: str, instance: str, cache_dir: Path | None) -> None:
        self.kind = kind
        self.instance = instance
        self.path = (cache_dir or default_cache_dir()) / kind / instance

    @property
    def pid_file(self) -> Path:
        return self.path / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.path / "server.log"

    @property
    def meta_file(self) -> Path:
        return self.path / "server.json"

    def meta(self) -> dict[str, object]:
        try:
            data = json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def choose_port(self, requested: int | None, default: int) -> int:
        """An instance keeps its port across restarts (its clients know it); a new one takes ``default`` if free."""
        previous = self.meta().get("port")
        if requested is not None:
            port = requested
        elif isinstance(previous, int):
            port = previous
        else:
            port = default if _port_free(default) else free_port()
        if not _port_free(port):
            raise LocalServerError(f"{self.kind}: port {port} on 127.0.0.1 is taken by another process; choose "
                                   "another with --port")
        return port


def as_server_user(cmd: Sequence[str]) -> list[str]:
    """``cmd`` as it must run: unchanged, or as root inside a user namespace (see the module docstring)."""
    if os.geteuid() != 0:
        return list(cmd)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise LocalServerError("running as root, PostgreSQL needs util-linux's unshare to drop root; none found")
    return [unshare, "--user", f"--map-user={NAMESPACE_UID}", f"--map-group={NAMESPACE_UID}", *cmd]


def program_alive(pid: int, program: str) -> bool:
    """``pid`` is alive and still runs ``program`` (guards against pid reuse)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return program.encode() in cmdline


def spawn(home: ServerHome, cmd: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached (its own session: it outlives this process), its output appended to the log."""
    home.path.mkdir(parents=True, exist_ok=True)
    with open(home.log_file, "ab") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    home.pid_file.write_text(str(proc.pid))
    return proc


def wait_ready(home: ServerHome, proc: subprocess.Popen[bytes], answers: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalServerError(f"{home.kind} exited with code {proc.returncode} during start-up\n"
                                   f"--- {home.log_file} ---\n{home.log_tail()}")
        if answers():
            return
        time.sleep(0.05)
    stop_pid(proc.pid, 5.0)
    raise LocalServerError(f"{home.kind} did not answer within {timeout:.0f} s\n--- {home.log_file} ---\n"
                           f"{home.log_tail()}")


def stop_pid(pid: int, timeout: float, sig: int = signal.SIGTERM) -> str:
    """``sig`` first, SIGKILL if the process has not exited within ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if not _pid_alive(pid):
        return f"stopped (pid {pid})"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _pid_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    return f"killed after it ignored the stop signal (pid {pid})"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_instance(home: ServerHome, program: str, purge: bool, timeout: float = 30.0,
                  sig: int = signal.SIGTERM) -> str:
    pid = home.pid()
    if pid is None:
        result = "not running"
    elif not program_alive(pid, program):
        home.pid_file.unlink(missing_ok=True)
        result = f"not running (removed stale pid file for {pid})"
    else:
        result = stop_pid(pid, timeout, sig)
        home.pid_file.unlink(missing_ok=True)
    if purge and home.path.exists():
        shutil.rmtree(home.path)
        result += f"; removed {home.path}"
    return result


class LocalServer:
    """What both local servers do alike: status from the pid file and a probe, refusing to start over a live
    process that does not answer. Subclasses name their program and how to reach and probe it."""

    kind = ""
    program = ""  # what the server's command line contains (guards against pid reuse)

    def __init__(self, *, instance: str = "default", port: int | None = None, cache_dir: Path | None = None) -> None:
        self.home = ServerHome(self.kind, instance, cache_dir)
        self.requested_port = port

    def address(self, port: int) -> str:
        raise NotImplementedError

    def answers(self, address: str) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> tuple[ServerStatus, bool]:
        """Start the server unless it runs. Returns (status, started_now)."""
        raise NotImplementedError

    def status(self) -> ServerStatus:
        pid = self.home.pid()
        port = self.home.meta().get("port")
        if pid is None:
            return ServerStatus(False, None, None, "not running")
        if not program_alive(pid, self.program):
            return ServerStatus(False, pid, None, f"dead: pid {pid} from {self.home.pid_file} is gone (killed?)")
        address = self.address(port) if isinstance(port, int) else None
        if address and self.answers(address):
            return ServerStatus(True, pid, address, f"running on 127.0.0.1:{port} (pid {pid})")
        return ServerStatus(False, pid, address, f"pid {pid} is alive but 127.0.0.1:{port} does not answer")

    def running_or_startable(self) -> ServerStatus | None:
        """The status if the server runs; None if it may be started; an error if a live process holds it."""
        current = self.status()
        if current.running:
            return current
        if current.pid is not None and program_alive(current.pid, self.program):
            raise LocalServerError(f"{self.kind} {current.detail}\n--- {self.home.log_file} ---\n"
                                   f"{self.home.log_tail()}")
        return None
