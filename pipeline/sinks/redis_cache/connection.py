"""Connecting to Redis with a clear error, never a hang: a bounded connect and socket timeout, and messages that
name the server but not its password."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 3.0
SOCKET_TIMEOUT_SECONDS = 5.0


class CacheUnreachable(ConnectionError):
    """The Redis server of a URL could not be reached; the message names it, never the password."""


def redis_url_of(host: str, port: int, db: int = 0) -> str:
    return f"redis://{host}:{port}/{db}"


def describe_redis(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


def connect(url: str) -> Any:
    """A redis-py client that answered PING, or :class:`CacheUnreachable`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                  socket_timeout=SOCKET_TIMEOUT_SECONDS)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        password = urlsplit(url).password
        reason = str(exc).replace(password, "***") if password else str(exc)
        raise CacheUnreachable(f"cannot reach Redis at {describe_redis(url)}: {reason}") from None
    return client
