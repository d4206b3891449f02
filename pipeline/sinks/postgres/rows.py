"""A rewards-topic record as the row the sink stages for the ledger: pure, no database here.

Times stay integers (milliseconds) until SQL turns them into ``timestamptz``; money stays integer minor units.
"""

from __future__ import annotations

from typing import Any

from pipeline.events.avro import reward_from_record

# Columns of the staging table, in COPY order (``write.STAGING`` declares them).
STAGED_COLUMNS = (
    "reward_id", "revision", "kind", "user_id", "conversion_id", "touchpoint_id", "episode_id", "campaign_id",
    "channel", "model", "amount_minor", "base_currency", "currency", "local_amount_minor", "conversion_value_minor",
    "original_reward", "touch_time_ms", "conversion_time_ms", "position", "journey_length", "event", "reason",
    "kafka_partition", "kafka_offset", "kafka_time_ms",
)

Row = tuple[Any, ...]


def staged_row(record: dict[str, Any], partition: int, offset: int, kafka_time_ms: int) -> Row:
    """The ledger row of one decoded attributed-reward record (its ``reward_id`` is the fact's own id)."""
    r = reward_from_record(record)
    return (r.reward_id, r.revision, str(r.kind), r.user_id, r.conversion_id, r.touchpoint_id, r.episode_id,
            r.campaign_id, r.channel, r.model, r.amount_minor, r.base_currency, r.currency, r.local_amount_minor,
            r.conversion_value_minor, r.original_reward, r.touch_time_ms, r.conversion_time_ms, r.position,
            r.journey_length, r.event, r.reason, partition, offset, kafka_time_ms)


def where(row: Row) -> tuple[int, int]:
    """(partition, offset) of a staged row."""
    return row[-3], row[-2]
