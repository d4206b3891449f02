"""Which PostgreSQL and Redis a command or the facade uses: the one given, else ``REWARDSTREAM_DATABASE_URL`` /
``REWARDSTREAM_REDIS_URL``, else the project's local server, started if it does not run (as the local broker
is for Kafka)."""

from __future__ import annotations

import os

from pipeline.local_servers.postgres import LocalPostgres
from pipeline.local_servers.process import LocalServer
from pipeline.local_servers.redis import LocalRedis

DATABASE_URL_ENV = "REWARDSTREAM_DATABASE_URL"
REDIS_URL_ENV = "REWARDSTREAM_REDIS_URL"


def database_url(given: str | None = None) -> str:
    return _given_or_local(given, DATABASE_URL_ENV, LocalPostgres())


def redis_url(given: str | None = None) -> str:
    return _given_or_local(given, REDIS_URL_ENV, LocalRedis())


def _given_or_local(given: str | None, env: str, local: LocalServer) -> str:
    url = given or os.environ.get(env)
    if url:
        return url
    status, _ = local.start()
    assert status.address
    return str(status.address)
