"""Helpers of the storage tests and the storage benchmark: real reward facts (the backfill of a generated log),
produced to a rewards topic as the worker produces them, and the ledger's facts read back in SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from pipeline.backfill import run_backfill
from pipeline.engine import EngineConfig
from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.jsonl import reward_from_json
from pipeline.events.types import AttributedReward
from pipeline.kafka.clients import producer_config
from pipeline.settings import Settings
from pipeline.synthetic import LogSpec, engine_config_table, generate


def backfill_rewards(tmp: Path, users: int = 300, days: int = 20, seed: int = 11) -> list[AttributedReward]:
    """The rewards of a generated log: every kind of fact (attributions, corrections, refunds, finals,
    unattributed conversions)."""
    log = tmp / "events.jsonl"
    log.write_text("\n".join(generate(LogSpec(users=users, days=days, seed=seed))) + "\n")
    out = tmp / "rewards.jsonl"
    run_backfill(log, out, EngineConfig.from_mapping(engine_config_table()), progress=False)
    return [reward_from_json(orjson.loads(line)) for line in out.read_bytes().splitlines() if line.strip()]


def produce_rewards(settings: Settings, rewards: Iterable[AttributedReward],
                    raw: Sequence[tuple[bytes, bytes]] = ()) -> int:
    """Rewards to ``settings.topic_rewards`` keyed by user, as the worker sends them; ``raw`` (key, value)
    records after them. Returns the records sent."""
    from confluent_kafka import Producer

    codec = AvroCodec("attributed_reward")
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.num.messages": 10000}))
    sent = 0
    for r in rewards:
        value = codec.encode(reward_to_record(r))
        while True:
            try:
                producer.produce(settings.topic_rewards, key=r.user_id.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 5000 == 0:
            producer.poll(0)
    for key, value in raw:
        producer.produce(settings.topic_rewards, key=key, value=value)
        sent += 1
    left = producer.flush(30)
    assert left == 0, f"{left} records not delivered"
    return sent


def ledger_records(conn: Any) -> list[dict[str, Any]]:
    """The ledger's facts as the JSON records ``pipeline.compare.facts`` reads (ids, kinds, revisions, amounts)."""
    rows = conn.execute("SELECT reward_id, kind, user_id, conversion_id, touchpoint_id, revision, amount_minor, "
                        "reason FROM reward_ledger").fetchall()
    return [dict(zip(("reward_id", "kind", "user_id", "conversion_id", "touchpoint_id", "revision", "amount_minor",
                      "reason"), row, strict=True)) for row in rows]


def json_records(rewards: Iterable[AttributedReward]) -> list[dict[str, Any]]:
    return [{"reward_id": r.reward_id, "kind": str(r.kind), "user_id": r.user_id, "conversion_id": r.conversion_id,
             "touchpoint_id": r.touchpoint_id, "revision": r.revision, "amount_minor": r.amount_minor,
             "reason": r.reason} for r in rewards]


def log_touchpoints(tmp: Path) -> list[Any]:
    """The touchpoints of the log :func:`backfill_rewards` generated in ``tmp``."""
    from pipeline.events.parse import parse_line
    from pipeline.events.types import Touchpoint

    out = []
    for line in (tmp / "events.jsonl").read_bytes().splitlines():
        try:
            event = parse_line(line)
        except ValueError:
            continue  # the log's deliberate garbage
        if isinstance(event, Touchpoint):
            out.append(event)
    return list({tp.touchpoint_id: tp for tp in out}.values())


def produce_touchpoints(settings: Settings, touchpoints: Iterable[Any]) -> None:
    from confluent_kafka import Producer

    from pipeline.events.avro import touchpoint_to_record

    codec = AvroCodec("touchpoint")
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    for tp in touchpoints:
        value = codec.encode(touchpoint_to_record(tp))
        producer.produce(settings.topic_touchpoints, key=tp.user_id.encode(), value=value)
        producer.poll(0)
    assert producer.flush(30) == 0
