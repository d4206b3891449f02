"""Fixtures of the storage tests: the project's own local PostgreSQL and Redis servers, started once per session
(an instance of this session's own, removed after), and a fresh database per test so tests never see each
other's rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def local_postgres() -> Iterator[str]:
    """URL of the session's PostgreSQL server (its ``rewardstream`` database)."""
    from pipeline.local_servers import LocalPostgres

    server = LocalPostgres(instance=f"pytest-{os.getpid()}")
    status, _ = server.start()
    assert status.address
    yield status.address
    server.stop(purge=True)


@pytest.fixture
def database_url(local_postgres: str) -> Iterator[str]:
    """A database of this test's own on the session's server, dropped after."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(local_postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield local_postgres.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(local_postgres, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def local_redis() -> Iterator[str]:
    from pipeline.local_servers import LocalRedis

    server = LocalRedis(instance=f"pytest-{os.getpid()}")
    status, _ = server.start()
    assert status.address
    yield status.address
    server.stop(purge=True)


@pytest.fixture(scope="session", autouse=True)
def stores_for_the_facade(local_postgres: str, local_redis: str) -> Iterator[None]:
    """The facade's default stores (and those of the examples it runs in child processes) are this session's
    servers, which are removed after it, rather than the machine's default local instances."""
    from pipeline.local_servers.endpoints import DATABASE_URL_ENV, REDIS_URL_ENV

    saved = {name: os.environ.get(name) for name in (DATABASE_URL_ENV, REDIS_URL_ENV)}
    os.environ[DATABASE_URL_ENV] = local_postgres
    os.environ[REDIS_URL_ENV] = local_redis
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
