"""The attributed-reward topic read back as the backfill's JSON records: one reader for ``consume``,
``verify``, the soak script and the tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.jsonl import reward_to_json
from pipeline.kafka.clients import consumer_config, drain
from pipeline.kafka.schema_registry import wire_format
from pipeline.settings import Settings


class KeyMismatch(ValueError):
    """A reward record not keyed by its user id (the worker keys every reward so)."""


class RewardReader:
    """A consumer of the rewards topic (read_committed, from the beginning, a group of its own unless given).
    ``read`` returns what arrived within a wait, decoded; redelivered rewards are kept (callers that count
    facts deduplicate by ``reward_id``, see ``pipeline.compare``)."""

    def __init__(self, settings: Settings, group: str | None = None, **overrides: Any) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(consumer_config(settings, group or f"rewardstream-reader-{uuid.uuid4().hex[:8]}",
                                                 **overrides))
        self.consumer.subscribe([settings.topic_rewards])
        self.codec = AvroCodec("attributed_reward")
        self.wire = wire_format(settings)

    def read(self, seconds: float) -> list[dict[str, Any]]:
        """Records that arrive within ``seconds`` (returning early once some came and the fetched ones ran out)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while not out:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for msg in drain(self.consumer, 5000, min(left, 0.5)):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                reward = reward_from_record(self.codec.decode(self.wire.inbound(value)))
                if msg.key() != reward.user_id.encode():
                    raise KeyMismatch(f"reward {reward.reward_id} keyed {msg.key()!r}, not by its user id")
                out.append(reward_to_json(reward))
        return out

    def close(self) -> None:
        self.consumer.close()
