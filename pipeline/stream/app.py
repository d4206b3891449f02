"""The Faust application: two agents (touchpoints, conversions) drive one PartitionProcessor per input
partition over the ``journeys`` table (RocksDB via rocksdict, changelogged to Kafka).

Faust-specific choices, each checked against faust-streaming 0.15 source (see ``pipeline.stream``):
- ``rocksdb://`` selects rocksdict; a small block cache per partition DB (Faust's default is 2 GiB each).
- Topics carry raw bytes (``value_type=bytes``): decoding Avro with fastavro is cheaper than faust Records.
- One table write per changed journey per event, inside the event's context (the only place Faust allows
  writes); expiry sweeps run there too, in slices of ``expiry_slice`` journeys.
- at_least_once, not exactly_once: Faust's transactional send derives the producer from the consumer's
  assignment, so a sink topic the app does not consume is sent outside the transaction (faust #177/#440).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.money import from_minor
from pipeline.engine import EngineConfig, EngineStats
from pipeline.events.avro import AvroCodec, conversion_from_record, touchpoint_from_record
from pipeline.events.errors import InvalidEvent
from pipeline.events.types import Event
from pipeline.settings import Settings
from pipeline.stream import journey_codec
from pipeline.stream.dead_letters import dead_letter
from pipeline.stream.processor import CONVERSIONS, TOUCHPOINTS, PartitionProcessor

log = logging.getLogger("rewardstream.worker")

JOURNEYS_TABLE = "journeys"
CHANGELOG_RETENTION_MS = 7 * 24 * 3600 * 1000  # the relay must read a record before compaction may drop it


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{JOURNEYS_TABLE}-changelog"


@dataclass
class WorkerState:
    """Everything the agents and web views share inside one worker process."""

    config: EngineConfig
    processors: dict[int, PartitionProcessor] = field(default_factory=dict)
    retired: EngineStats = field(default_factory=EngineStats)
    dead_letters: int = 0  # every refused record, whatever refused it, goes to the dead-letter topic
    events_in: int = 0

    def totals(self) -> EngineStats:
        total = dataclasses.replace(self.retired, per_model=self.retired.per_model.copy(), pending_touchpoints=0)
        for proc in self.processors.values():
            _add(total, proc.engine.stats)
        return total

    def retire(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            proc = self.processors.pop(p, None)
            if proc is not None:
                stats = dataclasses.replace(proc.engine.stats, pending_touchpoints=0)
                _add(self.retired, stats)

    def stats_json(self) -> dict[str, Any]:
        s = self.totals()
        lags = [lag for lag in (p.lag_ms() for p in self.processors.values()) if lag is not None]
        base = self.config.rates.base
        return {
            "events_in": self.events_in,
            "pending_touchpoints": s.pending_touchpoints,
            "touchpoints": s.touchpoints,
            "conversions": s.conversions,
            "refunds": s.refunds,
            "conversions_attributed": s.conversions_attributed,
            "conversions_unattributed": s.conversions_unattributed,
            "corrections": s.corrections,
            "finals": s.finals,
            "duplicates": s.duplicate_touchpoints + s.duplicate_conversions,
            "dropped_touchpoints": s.dropped_touchpoints,
            "rejected": self.dead_letters,
            "dead_letters": self.dead_letters,
            "total_attributed": float(from_minor(s.total_attributed_minor, base)),
            "base_currency": base,
            "per_model": dict(s.per_model),
            "watermark_lag_seconds": max(lags) / 1000 if lags else None,
            "partitions": sorted(self.processors),
        }


def _add(into: EngineStats, other: EngineStats) -> None:
    for f in dataclasses.fields(EngineStats):
        if f.name == "per_model":
            into.per_model.update(other.per_model)
        else:
            setattr(into, f.name, getattr(into, f.name) + getattr(other, f.name))


def _credentials(settings: Settings) -> Any:
    proto = settings.security_protocol.upper()
    if proto == "PLAINTEXT":
        return None
    import ssl

    context = ssl.create_default_context(cafile=settings.ssl_cafile or None) if "SSL" in proto else None
    if proto.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism or "PLAIN", ssl_context=context)
    return faust.SSLCredentials(context)


def create_app(settings: Settings, config: EngineConfig, learned: LearnedWeights | None = None
               ) -> tuple[faust.App, WorkerState]:
    state = WorkerState(config)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=settings.datadir,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_disable_leader=True,
        processing_guarantee="at_least_once",
        table_standby_replicas=settings.standby_replicas,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        # a killed worker's partitions move after this long (Faust's default is 60 s)
        broker_session_timeout=12.0,
        broker_heartbeat_interval=2.0,
        stream_buffer_maxsize=16384,
        key_serializer="raw",
        value_serializer="raw",
    )
    touchpoints = app.topic(settings.topic_touchpoints, key_type=bytes, value_type=bytes)
    conversions = app.topic(settings.topic_conversions, key_type=bytes, value_type=bytes)
    dead = app.topic(settings.topic_dead_letters, key_type=bytes, value_type=bytes)
    cache = settings.rocksdb_cache_mb * 1024 * 1024
    # Raw keys (Faust tables default to JSON, which would quote them): the changelog key is the user_id's
    # UTF-8 bytes, hashed like the input topics' keys, and the relay keys rewards with it.
    journeys = app.Table(
        JOURNEYS_TABLE, key_type=str, value_type=bytes, partitions=settings.partitions,
        options={"block_cache_size": cache, "write_buffer_size": max(cache // 4, 4 * 1024 * 1024)},
        extra_topic_configs={"min.compaction.lag.ms": str(CHANGELOG_RETENTION_MS)},
    )
    # Table() takes no serializer arguments and derives JSON from the types, and the table manager builds the
    # changelog topic (which recovery decodes with) at registration: set raw serializers, then rebuild it.
    journeys.key_serializer = "raw"  # type: ignore[attr-defined]
    journeys.value_serializer = "raw"  # type: ignore[attr-defined]
    journeys.changelog_topic = journeys._new_changelog_topic()  # type: ignore[attr-defined]
    codecs = {TOUCHPOINTS: AvroCodec("touchpoint"), CONVERSIONS: AvroCodec("conversion")}

    class TableBytes:
        """The journeys table as the processor's byte store."""

        @staticmethod
        def get(key: str) -> bytes | None:
            value = journeys.get(key)
            return value if isinstance(value, bytes | None) else bytes(value)

    topic_of = {TOUCHPOINTS: settings.topic_touchpoints, CONVERSIONS: settings.topic_conversions}

    def processor_for(partition: int) -> PartitionProcessor:
        proc = state.processors.get(partition)
        if proc is None:
            def caught_up(source: str, last_offset: int | None) -> bool:
                """Nothing left to read for this input partition, as far as the last fetch knows."""
                try:
                    highwater = app.consumer.highwater(TP(topic_of[source], partition))
                except Exception:
                    return False
                if highwater is None:
                    return False
                return (last_offset if last_offset is not None else -1) + 1 >= highwater

            proc = PartitionProcessor(partition, TableBytes(), config, learned,
                                      idle_timeout_s=settings.idle_timeout_seconds,
                                      slice_limit=settings.expiry_slice, caught_up=caught_up)
            restored = proc.restore(_partition_items(journeys, partition))
            log.info("partition %d: restored %d journeys with pending deadlines", partition, restored)
            state.processors[partition] = proc
        return proc

    def decode(source: str, value: bytes | None) -> Event:
        if value is None:
            raise InvalidEvent("<bytes>", "empty record value (tombstone) on an input topic")
        record = codecs[source].decode(value)
        if source == TOUCHPOINTS:
            return touchpoint_from_record(record)
        return conversion_from_record(record)

    async def handle(source: str, event: Any) -> None:
        msg = event.message
        if state.events_in == 0:
            # Faust buffers at most 100 changelog sends before it blocks the agent to flush (a class constant
            # that logs a warning each time); a larger buffer keeps the stream moving between flushes.
            app.producer.buffer.max_messages = 10_000
        state.events_in += 1
        proc = processor_for(msg.partition)
        try:
            ev = decode(source, event.value)
            if msg.key != ev.user_id.encode():
                raise InvalidEvent("key", f"record key {msg.key!r} is not the user_id {ev.user_id!r}: "
                                          "producers must key by user_id or journeys split across workers")
            ingest_ms = int(msg.timestamp * 1000) if msg.timestamp else None
            _, writes = proc.process(source, ev, msg.offset, ingest_ms)
        except InvalidEvent as exc:
            state.dead_letters += 1
            await dead.send(key=msg.key, value=dead_letter(msg.topic, msg.partition, msg.offset, msg.key,
                                                           event.value, exc, proc.engine.max_seen_ms))
            return
        for key, value in writes:
            if value is None:
                if key in journeys:
                    del journeys[key]
            else:
                journeys[key] = value

    @app.agent(touchpoints, concurrency=1)
    async def touchpoint_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(TOUCHPOINTS, event)

    @app.agent(conversions, concurrency=1)
    async def conversion_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(CONVERSIONS, event)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        inputs = {settings.topic_touchpoints, settings.topic_conversions}
        state.retire({tp.partition for tp in revoked if tp.topic in inputs})

    @app.page("/stats/")
    async def stats_view(web: Any, request: Any) -> Any:
        return web.json(state.stats_json())

    @app.page("/metrics/")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.text(prometheus_text(state.stats_json()), content_type="text/plain; version=0.0.4")

    @app.page("/journeys/{user_id}/")
    @app.table_route(table=journeys, match_info="user_id")
    async def journey_view(web: Any, request: Any, user_id: str) -> Any:
        raw = journeys.get(user_id)
        journey = journey_codec.decode(raw)[0] if raw is not None else None
        if journey is None:
            return web.json({"user_id": user_id, "found": False, "touchpoints": [], "conversions": []}, status=404)
        return web.json(journey_json(user_id, journey, config))

    return app, state


def _partition_items(table: Any, partition: int) -> Iterable[tuple[str, bytes]]:
    """The stored (key, value) pairs of one partition of a Faust rocksdb table."""
    db = table.data._db_for_partition(partition)
    for key, value in db.items():
        if not isinstance(key, bytes) or key.startswith(b"__faust"):
            continue
        yield key.decode("utf-8"), value


def journey_json(user_id: str, journey: Any, config: EngineConfig) -> dict[str, Any]:
    base = config.rates.base
    return {
        "user_id": user_id,
        "found": True,
        "touchpoints": [
            {"touchpoint_id": t.touchpoint_id, "episode_id": t.episode_id, "campaign_id": t.campaign_id,
             "channel": t.channel, "time_ms": t.time_ms, "immediate_reward": t.immediate_reward,
             "earned": float(from_minor(e, base))}
            for t, e in zip(journey.touches, journey.earned, strict=True)
        ],
        "conversions": [
            {"conversion_id": s.conversion_id, "event": s.event, "time_ms": s.time_ms, "currency": s.currency,
             "value": float(from_minor(s.value_minor, s.currency)), "model": s.used_model, "revision": s.revision,
             "refund_of": s.refund_of,
             "shares": {t.touchpoint_id: float(from_minor(a, base)) for t, a in zip(s.touches, s.shares,
                                                                                      strict=True)}}
            for s in journey.splits
        ],
    }


def prometheus_text(stats: dict[str, Any]) -> str:
    lines = []
    counters = ("events_in", "touchpoints", "conversions", "refunds", "conversions_attributed", "corrections",
                "finals", "duplicates", "dropped_touchpoints", "rejected", "dead_letters")
    for name in counters:
        lines += [f"# TYPE rewardstream_{name}_total counter", f"rewardstream_{name}_total {stats[name]}"]
    lines += ["# TYPE rewardstream_pending_touchpoints gauge",
              f"rewardstream_pending_touchpoints {stats['pending_touchpoints']}",
              "# TYPE rewardstream_attributed_value_total counter",
              f'rewardstream_attributed_value_total{{currency="{stats["base_currency"]}"}} {stats["total_attributed"]}']
    if stats["watermark_lag_seconds"] is not None:
        lines += ["# TYPE rewardstream_watermark_lag_seconds gauge",
                  f"rewardstream_watermark_lag_seconds {stats['watermark_lag_seconds']}"]
    lines.append("# TYPE rewardstream_conversions_by_model_total counter")
    for model, n in sorted(stats["per_model"].items()):
        lines.append(f'rewardstream_conversions_by_model_total{{model="{model}"}} {n}')
    return "\n".join(lines) + "\n"

