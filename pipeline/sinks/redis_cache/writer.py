"""The cache writer: the touchpoints and rewards topics (read_committed) into Redis, one MULTI/EXEC pipeline
per batch holding the facts and the consumed offsets.

It resumes from the offsets Redis holds, and from the topics' beginning where Redis holds none. When a batch
finds the offsets gone that it wrote before (Redis flushed, or restarted without persistence), it seeks every
assigned partition back to the beginning: the cache is rebuilt from the topics, and facts it already holds are
no-ops (the Lua folds are idempotent). Redis unreachable at start: :class:`CacheUnreachable` at once; lost
mid-stream: the batch waits and is written when Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import orjson

from pipeline.errors import InvalidEvent
from pipeline.events.avro import AvroCodec, reward_from_record, touchpoint_from_record
from pipeline.kafka.clients import consumer_config, drain
from pipeline.settings import Settings
from pipeline.sinks.flat_avro import FlatDecoder
from pipeline.sinks.loop import SinkLoop
from pipeline.sinks.redis_cache.connection import connect, describe_redis
from pipeline.sinks.redis_cache.keys import CacheKeys
from pipeline.sinks.redis_cache.scripts import REWARD, TOUCHPOINT

log = logging.getLogger("rewardstream.sink.redis")

MAX_BATCH = 5000
POLL_SECONDS = 0.05
IDLE_CHECK_SECONDS = 0.5  # how often an idle writer checks that Redis still holds its cache
SESSION_TIMEOUT_MS = 6000  # a killed writer's replacement resumes within seconds (the broker's minimum)


class CacheWriter(SinkLoop):
    def __init__(self, settings: Settings, url: str, ttl_seconds: int, *, namespace: str | None = None,
                 group: str | None = None, max_batch: int = MAX_BATCH, poll_seconds: float = POLL_SECONDS,
                 retry_seconds: float = 1.0) -> None:
        from confluent_kafka import Consumer

        super().__init__("redis-cache-writer")
        if ttl_seconds < 1:
            raise ValueError(f"the cache's TTL must be at least 1 s, got {ttl_seconds}")
        self.url = url
        self.ttl = ttl_seconds
        self.keys = CacheKeys(namespace or settings.topic_rewards)
        self.touchpoints_topic = settings.topic_touchpoints
        self.rewards_topic = settings.topic_rewards
        self.max_batch = max_batch
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.stats = {"touchpoints": 0, "rewards": 0, "stale": 0, "other_user": 0, "undecodable": 0, "rebuilds": 0,
                      "errors": 0}
        self._client: Any = connect(url)  # CacheUnreachable here: a clear error at start
        self._reward = self._client.register_script(REWARD)
        self._touchpoint = self._client.register_script(TOUCHPOINT)
        self._wrote = False  # this writer has written offsets that Redis should still hold
        self._checked = 0.0
        self._touchpoints = AvroCodec("touchpoint")  # state and action are arrays: not a flat record
        self._rewards = FlatDecoder(AvroCodec("attributed_reward"))
        self._consumer = Consumer(consumer_config(settings, group or f"{settings.app_id}-cache-{self.keys.base}",
                                                  **{"session.timeout.ms": SESSION_TIMEOUT_MS}))
        self._consumer.subscribe([self.touchpoints_topic, self.rewards_topic], on_assign=self._on_assign)

    def _close_store(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def poll_once(self) -> int:
        messages = drain(self._consumer, self.max_batch, self.poll_seconds)
        if not messages:
            self._note_position()
            self._check_idle()
            return 0
        self.caught_up.clear()
        while not self._stopping.is_set():
            try:
                self._write(messages)
                return len(messages)
            except Exception as exc:
                import redis

                if not isinstance(exc, redis.ConnectionError | redis.TimeoutError):
                    raise
                log.warning("Redis at %s is unavailable (%s); the batch waits", describe_redis(self.url), exc)
                self._stopping.wait(self.retry_seconds)
        return 0

    def _write(self, messages: list[Any]) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.exists(self.keys.offsets)
        kinds: list[str] = []
        next_offsets: dict[str, int] = {}
        for msg in messages:
            if msg.error():
                continue
            topic = msg.topic()
            next_offsets[f"{topic}:{msg.partition()}"] = msg.offset() + 1
            try:
                if topic == self.rewards_topic:
                    self._add_reward(pipe, msg.value())
                    kinds.append("rewards")
                else:
                    self._add_touchpoint(pipe, msg.value())
                    kinds.append("touchpoints")
            except (InvalidEvent, KeyError, ValueError, TypeError) as exc:
                self.stats["undecodable"] += 1
                log.warning("cache: skipped %s[%d]@%d: %s", topic, msg.partition(), msg.offset(), exc)
        if next_offsets:
            pipe.hset(self.keys.offsets, mapping=next_offsets)
        results = pipe.execute(raise_on_error=False)  # a script's error leaves the batch's other writes applied
        for kind, result in zip(kinds, results[1:], strict=False):
            if isinstance(result, Exception):
                self.stats["errors"] += 1
                log.warning("cache: a fact could not be folded into Redis: %s", result)
            elif result == 1:
                self.stats[kind] += 1
            elif result == 0:
                self.stats["stale"] += 1
            else:
                self.stats["other_user"] += 1
        if not results[0] and self._wrote:
            self._rebuild()
        self._wrote = True

    def _add_reward(self, pipe: Any, value: bytes | None) -> None:
        if value is None:
            raise InvalidEvent("<record>", "empty record")
        r = reward_from_record(self._rewards.decode(value))
        if r.kind == "unattributed":
            return
        self._reward(keys=[self.keys.touchpoint(r.touchpoint_id), self.keys.user(r.user_id)],
                     args=[r.user_id, str(r.kind), r.conversion_id or "", r.revision, r.amount_minor, r.base_currency,
                           r.touch_time_ms, self.ttl, r.touchpoint_id, r.episode_id, r.campaign_id, r.channel],
                     client=pipe)

    def _add_touchpoint(self, pipe: Any, value: bytes | None) -> None:
        if value is None:
            raise InvalidEvent("<record>", "empty record")
        tp = touchpoint_from_record(self._touchpoints.decode(value))
        fields = ["episode_id", tp.episode_id, "campaign_id", tp.campaign_id, "channel", tp.channel,
                  "immediate_reward", repr(tp.immediate_reward), "creative_type", tp.creative_type or "",
                  "state", orjson.dumps(tp.state), "action", orjson.dumps(tp.action)]
        self._touchpoint(keys=[self.keys.touchpoint(tp.touchpoint_id), self.keys.user(tp.user_id)],
                         args=[tp.user_id, tp.touchpoint_id, tp.timestamp_ms, self.ttl, *fields], client=pipe)

    def _check_idle(self) -> None:
        """While no record comes, look every ``IDLE_CHECK_SECONDS`` whether Redis still holds the offsets."""
        import redis

        if not self._wrote or time.monotonic() - self._checked < IDLE_CHECK_SECONDS:
            return
        self._checked = time.monotonic()
        try:
            if not self._client.exists(self.keys.offsets):
                self._rebuild()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis at %s is unavailable (%s)", describe_redis(self.url), exc)

    def _rebuild(self) -> None:
        """Redis lost what this writer wrote: read every assigned partition again from its beginning."""
        from confluent_kafka import TopicPartition

        self.stats["rebuilds"] += 1
        self._wrote = False  # the batch that finds the offsets gone next is part of the rebuild
        log.warning("Redis at %s lost the cache (flushed or restarted); rebuilding it from the topics",
                    describe_redis(self.url))
        for tp in self._consumer.assignment():
            low, _high = self._consumer.get_watermark_offsets(tp, timeout=10)
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, low))

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        stored: dict[bytes, bytes] = {}
        while not self._stopping.is_set():
            try:
                stored = self._client.hgetall(self.keys.offsets)
                break
            except Exception as exc:
                log.warning("Redis at %s is unavailable while partitions are assigned (%s)",
                            describe_redis(self.url), exc)
                self._stopping.wait(self.retry_seconds)
        for tp in partitions:
            offset = stored.get(f"{tp.topic}:{tp.partition}".encode())
            tp.offset = int(offset) if offset is not None else OFFSET_BEGINNING
        self._wrote = bool(stored)
        consumer.assign(partitions)
