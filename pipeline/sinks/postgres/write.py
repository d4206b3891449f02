"""One database transaction per batch: the ledger, the current state, dead letters and the consumed offsets.

Every statement is idempotent (a fact already in the ledger is a no-op; a current row is replaced only by a
higher revision; offsets only move forward), so a batch written twice (a commit whose acknowledgement was lost,
a partition reassigned) leaves the same tables as once. Facts the schema refuses are found by writing halves of
the batch inside savepoints that are rolled back, and go to ``sink_dead_letters`` with PostgreSQL's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from pipeline.sinks.postgres.rows import STAGED_COLUMNS, Row, where

STAGING = """CREATE TEMP TABLE IF NOT EXISTS reward_staging (
    reward_id text, revision integer, kind text, user_id text, conversion_id text, touchpoint_id text,
    episode_id text, campaign_id text, channel text, model text, amount_minor bigint, base_currency text,
    currency text, local_amount_minor bigint, conversion_value_minor bigint, original_reward double precision,
    touch_time_ms bigint, conversion_time_ms bigint, position integer, journey_length integer, event text,
    reason text, kafka_partition integer, kafka_offset bigint, kafka_time_ms bigint
) ON COMMIT DELETE ROWS"""

_TS = "(timestamptz 'epoch' + {0} * interval '1 millisecond')"  # exact milliseconds, no numeric arithmetic

STATEMENTS = (
    # the ledger: every fact once
    f"""INSERT INTO reward_ledger (reward_id, revision, kind, user_id, conversion_id, touchpoint_id, episode_id,
        campaign_id, channel, model, amount_minor, base_currency, currency, local_amount_minor,
        conversion_value_minor, original_reward, touch_time, conversion_time, position, journey_length, event,
        reason, kafka_partition, kafka_offset, kafka_time)
    SELECT reward_id, revision, kind, user_id, conversion_id, touchpoint_id, episode_id, campaign_id, channel,
        model, amount_minor, base_currency, currency, local_amount_minor, conversion_value_minor, original_reward,
        {_TS.format("touch_time_ms")}, {_TS.format("conversion_time_ms")}, position, journey_length, event, reason,
        kafka_partition, kafka_offset, {_TS.format("kafka_time_ms")}
    FROM reward_staging
    ON CONFLICT (reward_id, revision) DO NOTHING""",
    # current state: the latest revision of each pair
    f"""INSERT INTO reward_current (user_id, conversion_id, touchpoint_id, revision, kind, model, episode_id,
        campaign_id, channel, amount_minor, base_currency, touch_time, conversion_time, event)
    SELECT DISTINCT ON (user_id, conversion_id, touchpoint_id) user_id, conversion_id, touchpoint_id, revision,
        kind, model, episode_id, campaign_id, channel, amount_minor, base_currency, {_TS.format("touch_time_ms")},
        {_TS.format("conversion_time_ms")}, event
    FROM reward_staging WHERE kind IN ('attribution', 'correction', 'refund')
    ORDER BY user_id, conversion_id, touchpoint_id, revision DESC
    ON CONFLICT (user_id, conversion_id, touchpoint_id) DO UPDATE SET revision = excluded.revision,
        kind = excluded.kind, model = excluded.model, amount_minor = excluded.amount_minor,
        conversion_time = excluded.conversion_time, event = excluded.event
    WHERE reward_current.revision < excluded.revision""",
    f"""INSERT INTO touchpoint_final (user_id, touchpoint_id, episode_id, campaign_id, channel, amount_minor,
        base_currency, touch_time)
    SELECT DISTINCT ON (user_id, touchpoint_id) user_id, touchpoint_id, episode_id, campaign_id, channel,
        amount_minor, base_currency, {_TS.format("touch_time_ms")}
    FROM reward_staging WHERE kind = 'final' ORDER BY user_id, touchpoint_id, revision DESC
    ON CONFLICT (user_id, touchpoint_id) DO NOTHING""",
    f"""INSERT INTO conversion_unattributed (user_id, conversion_id, revision, reason, event, model, conversion_time,
        value_minor, currency)
    SELECT DISTINCT ON (user_id, conversion_id) user_id, conversion_id, revision, reason, event, model,
        {_TS.format("coalesce(conversion_time_ms, touch_time_ms)")}, conversion_value_minor, currency
    FROM reward_staging WHERE kind = 'unattributed' ORDER BY user_id, conversion_id, revision DESC
    ON CONFLICT (user_id, conversion_id) DO UPDATE SET revision = excluded.revision, reason = excluded.reason
    WHERE conversion_unattributed.revision < excluded.revision""",
    f"""INSERT INTO touchpoint_seen (user_id, touchpoint_id, episode_id, campaign_id, channel, touch_time)
    SELECT DISTINCT ON (user_id, touchpoint_id) user_id, touchpoint_id, episode_id, campaign_id, channel,
        {_TS.format("touch_time_ms")}
    FROM reward_staging WHERE kind <> 'unattributed'
    ON CONFLICT (user_id, touchpoint_id) DO NOTHING""",
)

SAVE_OFFSETS = """INSERT INTO sink_offsets (sink, topic, partition, next_offset) VALUES (%s, %s, %s, %s)
    ON CONFLICT (sink, topic, partition) DO UPDATE SET next_offset = greatest(sink_offsets.next_offset,
        excluded.next_offset)"""

SAVE_DEAD_LETTER = """INSERT INTO sink_dead_letters (topic, partition, "offset", reason, payload)
    VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"""


class DeadLetter(NamedTuple):
    partition: int
    offset: int
    reason: str
    payload: bytes | None


class Batch(NamedTuple):
    """What one poll gave: rows to store, records refused before the database, and per partition the next
    offset to consume (one past the last record of the batch, stored or refused)."""

    rows: list[Row]
    dead: list[DeadLetter]
    next_offsets: dict[int, int]


def _write_facts(conn: Any, rows: Sequence[Row]) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        with cur.copy(f"COPY reward_staging ({', '.join(STAGED_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        for statement in STATEMENTS:
            cur.execute(statement)


def refused(conn: Any, rows: Sequence[Row]) -> list[tuple[Row, str]]:
    """The rows the schema refuses, with PostgreSQL's reason: halves written in savepoints rolled back."""
    import psycopg

    def probe(part: Sequence[Row]) -> str | None:
        try:
            with conn.transaction():
                _write_facts(conn, part)
                raise psycopg.Rollback()
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            return str(exc).strip().splitlines()[0]
        return None

    out: list[tuple[Row, str]] = []
    pending: list[Sequence[Row]] = [rows]
    while pending:
        part = pending.pop()
        reason = probe(part)
        if reason is None:
            continue
        if len(part) == 1:
            out.append((part[0], reason))
        else:
            half = len(part) // 2
            pending += [part[half:], part[:half]]
    return out


def write_batch(conn: Any, sink: str, topic: str, batch: Batch) -> list[DeadLetter]:
    """The batch in one transaction; returns the dead letters written (refused here or before)."""
    import psycopg

    rows, dead = batch.rows, list(batch.dead)
    try:
        with conn.transaction():
            _write(conn, sink, topic, rows, dead, batch.next_offsets)
        return dead
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError):
        pass
    with conn.transaction():
        bad = refused(conn, rows)
        bad_at = {where(row) for row, _ in bad}
        dead += [DeadLetter(*where(row), f"refused by the ledger's schema: {reason}", None) for row, reason in bad]
        _write(conn, sink, topic, [r for r in rows if where(r) not in bad_at], dead, batch.next_offsets)
    return dead


def _write(conn: Any, sink: str, topic: str, rows: Sequence[Row], dead: Sequence[DeadLetter],
           next_offsets: dict[int, int]) -> None:
    _write_facts(conn, rows)
    with conn.cursor() as cur:
        if dead:
            cur.executemany(SAVE_DEAD_LETTER, [(topic, d.partition, d.offset, d.reason, d.payload) for d in dead])
        cur.executemany(SAVE_OFFSETS, [(sink, topic, p, o) for p, o in sorted(next_offsets.items())])


def stored_offsets(conn: Any, sink: str, topic: str) -> dict[int, int]:
    with conn.transaction():
        rows = conn.execute("SELECT partition, next_offset FROM sink_offsets WHERE sink = %s AND topic = %s",
                            (sink, topic)).fetchall()
    return {int(p): int(o) for p, o in rows}
