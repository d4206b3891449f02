"""A local PostgreSQL server: ``rewardstream postgres start|stop|status|address``.

Binaries: pgserver's bundled PostgreSQL 16 (a Python dependency), else the system's (Debian's
``/usr/lib/postgresql/<version>/bin``, or ``postgres`` on PATH). The cluster is initialised on first start with
one role and database, ``rewardstream``, trusted on 127.0.0.1 only (a development server, as the local broker
is PLAINTEXT); it listens on TCP only.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
from pathlib import Path

from pipeline.local_servers.process import (
    LocalServer,
    LocalServerError,
    ServerStatus,
    as_server_user,
    spawn,
    stop_instance,
    wait_ready,
)

DEFAULT_PORT = 5432
ROLE = "rewardstream"
DATABASE = "rewardstream"


def postgres_bin_dir() -> Path:
    """Where initdb and postgres are: pgserver's bundle first, then the system's."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise LocalServerError("no PostgreSQL binaries: install the Python package pgserver (a dependency of this "
                           "project) or the system's postgresql")


def database_answers(url: str, timeout: float = 1.0) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


class LocalPostgres(LocalServer):
    """One local PostgreSQL instance. ``start`` is idempotent; the instance keeps its port across restarts."""

    kind = "postgres"
    program = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.home.path / "data"

    def address(self, port: int, database: str = DATABASE) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{port}/{database}"

    def answers(self, address: str) -> bool:
        return database_answers(address)

    def start(self, timeout: float = 60.0) -> tuple[ServerStatus, bool]:
        """Start the server unless it runs. Returns (status, started_now)."""
        current = self.running_or_startable()
        if current is not None:
            return current, False
        bin_dir = postgres_bin_dir()
        self.home.path.mkdir(parents=True, exist_ok=True)
        self.home.pid_file.unlink(missing_ok=True)
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)  # a first start interrupted before initdb finished
            init = subprocess.run(
                as_server_user([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", ROLE, "--auth=trust",
                                "--encoding=UTF8", "--locale=C", "--no-sync"]),
                capture_output=True, text=True, check=False)
            if init.returncode != 0:
                raise LocalServerError(f"initdb failed:\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
        port = self.home.choose_port(self.requested_port, DEFAULT_PORT)
        self.home.meta_file.write_text(f'{{"port": {port}, "bin_dir": "{bin_dir}"}}')
        proc = spawn(self.home, as_server_user([
            str(bin_dir / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(port), "-k", "",
            "-c", "max_connections=200"]))
        admin = self.address(port, "postgres")
        wait_ready(self.home, proc, lambda: database_answers(admin), timeout)
        if fresh:
            self._create_database(admin)
        return self.status(), True

    def _create_database(self, admin_url: str) -> None:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self, purge: bool = False, timeout: float = 30.0) -> str:
        """Fast shutdown (SIGINT: open transactions roll back, the data is consistent); SIGKILL after
        ``timeout``. ``purge`` deletes the instance's data too."""
        return stop_instance(self.home, self.program, purge, timeout, signal.SIGINT)
