"""The ledger's schema as versioned SQL files, applied in order on start, each once.

``migrations/NNNN_name.sql`` files are applied in one transaction that holds an advisory lock, so two sinks
starting at once do not both apply them; ``schema_migrations`` records which versions a database has.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, NamedTuple

LOCK_KEY = 0x72657761  # pg_advisory_xact_lock key of the migrations ("rewa")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations, by version; two files with one version are an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files("pipeline.sinks.postgres").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version}: {found[version].name}, {match.group(2)}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply(conn: Any) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        have = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for m in migrations():
            if m.version in have:
                continue
            conn.execute(m.sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
            applied_now.append(m.version)
    return applied_now
