"""Deployment settings: where Kafka is, what the topics are called, how clients authenticate.

One source of truth for every process (CLI, worker, producers, replay buffer, docker-compose, deploy/).
Values come from defaults, then an optional TOML file, then ``REWARDSTREAM_<FIELD>`` environment variables
(the environment wins, so a container can override a baked-in file). Attribution settings live in
:mod:`pipeline.engine.config`, read from the same TOML file's ``[attribution]`` table.

May import: no other part of the package."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "REWARDSTREAM_"


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class Settings:
    """Kafka and topic settings; every field is documented and has a working local default."""

    bootstrap_servers: str = _doc("Kafka bootstrap servers, comma separated.", "127.0.0.1:9092")
    topic_touchpoints: str = _doc("Topic the agents publish touchpoints to (keyed by user_id).",
                                  "rewardstream.touchpoints")
    topic_conversions: str = _doc("Topic the conversion feeds publish to (keyed by user_id).",
                                  "rewardstream.conversions")
    topic_rewards: str = _doc("Topic of attributed-reward events the worker emits.",
                              "rewardstream.attributed-rewards")
    topic_dead_letters: str = _doc("Topic of rejected input records, with the reason.",
                                   "rewardstream.dead-letters")
    partitions: int = _doc("Partition count of every topic; inputs and tables must agree.", 8)
    replication_factor: int = _doc("Replication factor used when the project creates topics.", 1)
    security_protocol: str = _doc("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.", "PLAINTEXT")
    sasl_mechanism: str = _doc("SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when SASL is used.", "PLAIN")
    sasl_username: str = _doc("SASL user name.", "")
    sasl_password: str = _doc("SASL password.", "")
    ssl_cafile: str = _doc("CA bundle to verify the brokers' TLS certificates.", "")
    app_id: str = _doc("Application id: consumer group, changelog topic prefix (both runtimes).", "rewardstream")
    datadir: str = _doc("Worker state directory (RocksDB); one per worker process.", "rewardstream-data")
    web_host: str = _doc("Host name other workers use to reach this worker's HTTP port.", "127.0.0.1")
    web_port: int = _doc("HTTP port of the worker (/stats, /metrics, /journeys/{user_id}).", 6066)
    web_bind: str = _doc("Address the worker's HTTP server listens on: loopback by default; 0.0.0.0 to serve other "
                         "hosts (other workers route /journeys/ requests to it), which requires web_token.",
                         "127.0.0.1")
    web_token: str = _doc("Bearer token the worker's HTTP views require (/journeys/ shows users' touchpoints and "
                          "conversion values; /stats/ and /metrics/ too). Required when web_bind is not loopback.",
                          "")
    rocksdb_cache_mb: int = _doc("RocksDB block cache per table partition, MiB (Faust's default is 2 GiB).", 64)
    rocksdb_write_buffer_mb: int = _doc("RocksDB memtable per table partition, MiB: what a partition's store holds "
                                        "in memory before it writes a file. Memtables count fully in RSS and a "
                                        "worker owns many partitions (Faust's default is 64).", 4)
    session_timeout_ms: int = _doc("How long a consumer group waits for a member that stopped answering (a killed "
                                   "worker or trainer's replay buffer) before its partitions move to the others; "
                                   "the broker allows 6000 and up by default. Heartbeats go every sixth of it.",
                                   12_000)
    idle_timeout_seconds: int = _doc("An input partition that is caught up and silent this long stops holding the "
                                     "watermark back.", 30)
    max_event_delay_seconds: int = _doc("Longest time an event may take to reach Kafka after its event time. A "
                                        "partition whose inputs are all idle advances its event time from the wall "
                                        "clock, this far behind it, so finals go out without new events.", 300)
    expiry_slice: int = _doc("Journeys expired at most per partition and step, so a sweep never stalls the stream.",
                             1000)
    engine: str = _doc("Attribution engine of the worker and the backfill: auto (native when it is installed, else "
                       "python with a warning), native (Rust; an error when not installed) or python (the "
                       "reference implementation); names in pipeline.native.choice.", "auto")
    batch_max_events: int = _doc("Most input events the worker takes in one batch.", 2000)
    batch_linger_ms: int = _doc("How often a batch is handed over when it has not filled: the longest an event "
                                "waits before it is processed (larger batches against latency).", 40)
    standby_replicas: int = _doc("Warm copies of each table partition on other workers.", 1)
    runtime: str = _doc("Worker runtime: faust (Faust agents, the default, at-least-once with stable reward ids) or "
                        "kafka (confluent-kafka with Kafka transactions: exactly once for read_committed readers).",
                        "faust")
    commit_interval_ms: int = _doc("Kafka runtime: longest time a transaction stays open, so rewards become "
                                   "readable (read_committed) at most this long after their batch. A worker that "
                                   "has caught up commits at once.", 100)
    max_task_idle_ms: int = _doc("Kafka runtime: how long a conversion may wait, past its broker timestamp, for "
                                 "the touchpoints that precede it to be read (inputs merged in time order, as Kafka "
                                 "Streams' max.task.idle.ms).", 50)
    transactional_id: str = _doc("Kafka runtime: this worker's transactional id; a second worker started with the "
                                 "same id fences the first. Default: app_id, host name and state directory.", "")
    ingest_port: int = _doc("HTTP port of the conversion-ingest endpoint (POST /conversions).", 8080)
    ingest_token: str = _doc("Bearer token the ingest endpoint requires; it refuses to start without one.", "")
    ingest_max_batch: int = _doc("Most conversions one POST to the ingest endpoint may carry.", 10000)
    serialization: str = _doc("Wire format of every topic's records: single-object (Avro single-object encoding, "
                              "the fingerprint in the record) or confluent (magic byte 0 and a schema id from "
                              "registry_url, what Confluent's Avro serializers read and write).", "single-object")
    registry_url: str = _doc("Base URL of a Confluent-compatible schema registry API, for serialization confluent "
                             "(the local one: rewardstream registry address).", "")

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults < TOML file (``path`` or ``$REWARDSTREAM_CONFIG``) < environment variables."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = path or env.get(ENV_PREFIX + "CONFIG")
        if path:
            values.update(_toml_top_level(Path(path)))
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = raw
        return cls(**_coerce(cls, values))

    @classmethod
    def configured(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> set[str]:
        """The fields a TOML file or the environment sets (the rest are defaults)."""
        env = os.environ if env is None else env
        path = path or env.get(ENV_PREFIX + "CONFIG")
        names = set(_toml_top_level(Path(path))) if path else set()
        return names | {f.name for f in dataclasses.fields(cls) if ENV_PREFIX + f.name.upper() in env}

    def with_overrides(self, **overrides: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def environment(self) -> dict[str, str]:
        """These settings as ``REWARDSTREAM_*`` variables: what a child process needs to load them back."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def documentation(cls) -> list[tuple[str, str, Any]]:
        """(environment variable, description, default) for every setting."""
        return [(ENV_PREFIX + f.name.upper(), f.metadata["doc"], f.default) for f in dataclasses.fields(cls)]


def _toml_top_level(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    known = {f.name for f in dataclasses.fields(Settings)}
    kafka = data.get("kafka", {})
    flat = {k: v for k, v in {**data, **kafka}.items() if not isinstance(v, dict)}
    unknown = set(flat) - known
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    return flat


def _coerce(cls: type[Settings], values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in types:
            raise ValueError(f"unknown setting {name!r}")
        if types[name] in ("int", int):
            try:
                out[name] = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"setting {name} must be an integer, got {value!r}") from None
        else:
            out[name] = str(value)
    return out
