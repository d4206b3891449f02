"""Database URLs as users write them (the design document's ``postgresql://user:pass@localhost/db``): which
ones name PostgreSQL, how to name the server in a message without the password, and connecting with a clear
error when it cannot be reached."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 5


class DatabaseUnreachable(ConnectionError):
    """The database of a URL could not be reached; the message names the server, never the password."""


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in ("postgresql", "postgres")


def describe(url: str) -> str:
    """``user@host:port/database`` of ``url``: what a message may show of it."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{user}{parts.hostname or 'localhost'}{port}{parts.path or ''}"


def without_secret(text: str, url: str) -> str:
    """``text`` with the URL's password, if any, replaced (a driver's message may quote the URL)."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def connect(url: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS, **kwargs: Any) -> Any:
    """A psycopg connection, or :class:`DatabaseUnreachable` naming the server after ``timeout`` seconds."""
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=max(1, round(timeout)), **kwargs)
    except psycopg.OperationalError as exc:
        first = without_secret(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise DatabaseUnreachable(f"cannot reach PostgreSQL at {describe(url)}: {first}") from None
