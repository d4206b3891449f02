"""The demo's last step: its rewards into the local PostgreSQL ledger, and one SQL answer (attributed value per
channel by model), so that a new user sees the ledger fill and the query to ask it.

The database ``rewardstream_demo`` on the local server holds the latest demo run's rewards: it is recreated at
each run.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.local_servers import LocalServerError, database_url
from pipeline.money.currency import MINOR_UNITS
from pipeline.settings import Settings

DATABASE = "rewardstream_demo"
QUERY = ("SELECT model, channel, base_currency, value_minor FROM attributed_value_by_channel "
         "ORDER BY model, value_minor DESC")
WAIT_SECONDS = 600.0


def write_ledger_and_answer(settings: Settings, say: Callable[[str], None]) -> bool:
    """False (and a line saying why) when the ledger could not be written; the demo goes on without it."""
    import psycopg

    from pipeline.sinks.postgres import DatabaseUnreachable, PostgresSink, describe

    try:
        server = database_url()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        url = server.rsplit("/", 1)[0] + f"/{DATABASE}"
        sink = PostgresSink(settings, url, name="demo").start()
    except (LocalServerError, DatabaseUnreachable, psycopg.Error) as exc:
        say(f"ledger: skipped, PostgreSQL is not available: {exc}")
        return False
    try:
        if not sink.caught_up.wait(WAIT_SECONDS):
            say(f"ledger: the sink did not catch up within {WAIT_SECONDS:.0f} s")
            return False
    finally:
        sink.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute(QUERY).fetchall()
    say(f"ledger: {sink.stats['facts']:,} reward facts in PostgreSQL ({describe(url)}); value per channel by model:")
    say(f"  psql {url} -c \"{QUERY}\"")
    by_model: dict[str, list[str]] = {}
    for model, channel, currency, minor in rows:
        value = minor / 10 ** MINOR_UNITS.get(currency, 2)
        by_model.setdefault(model or "-", []).append(f"{channel} {value:,.2f}")
    for model, cells in by_model.items():
        say(f"  {model:<15} " + ", ".join(cells))
    return True
