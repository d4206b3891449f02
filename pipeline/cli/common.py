"""Reading the project's TOML file for the commands that need attribution settings."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine.config import EngineConfig
from pipeline.events.wire import SERIALIZATIONS
from pipeline.kafka.topics import ensure_topics
from pipeline.local_kafka import LocalKafka, LocalKafkaError
from pipeline.settings import Settings


def load_engine_config(path: str | Path | None, model: str | None = None) -> EngineConfig:
    """The ``[attribution]`` table of ``path`` (defaults without a file), with ``--model`` applied."""
    config = EngineConfig()
    if path:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
        config = EngineConfig.from_mapping(data.get("attribution", {}))
    if model:
        config = dataclasses.replace(config, default_model=model)
    return config


def load_weights(path: str | Path | None) -> LearnedWeights | None:
    if not path:
        return None
    return LearnedWeights.from_json(json.loads(Path(path).read_text()))


def add_kafka_arguments(p: argparse.ArgumentParser, config_help: str = "TOML file; environment variables override it",
                        bootstrap_help: str = "Kafka bootstrap servers") -> None:
    """The --config and --bootstrap options every command that talks to Kafka takes (read by
    :func:`kafka_settings`)."""
    p.add_argument("--config", help=config_help)
    p.add_argument("--bootstrap", help=bootstrap_help)
    p.add_argument("--serialization", choices=SERIALIZATIONS,
                   help="wire format of the topics' records (default: the serialization setting, single-object)")
    p.add_argument("--registry-url", help="Confluent-compatible schema registry API, for --serialization confluent "
                                          "(the local one: rewardstream registry address)")


def wire_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The --serialization and --registry-url flags as settings overrides (None: not given)."""
    return {"serialization": args.serialization, "registry_url": args.registry_url}


def kafka_settings(path: str | Path | None, bootstrap: str | None = None, **overrides: Any) -> Settings:
    """Settings for a command that talks to Kafka: defaults < file < environment < flags. Where nothing names
    the brokers, the project's local broker is used when it runs (it may have had to take a port other than
    9092), so every command reaches the broker ``rewardstream kafka start`` reported."""
    settings = Settings.load(path).with_overrides(bootstrap_servers=bootstrap, **overrides)
    if bootstrap or "bootstrap_servers" in Settings.configured(path):
        return settings
    status = LocalKafka().status()
    if status.running and status.bootstrap:
        return settings.with_overrides(bootstrap_servers=status.bootstrap)
    return settings


class BrokerUnavailable(RuntimeError):
    """The local broker could not be started."""


def run_settings(command: str, bootstrap: str | None, say: Callable[[str], None]) -> Settings:
    """Settings for one run of a self-contained command (demo, verify): the given Kafka, or the local broker
    started if none runs, and topics and app id of the run's own, created here."""
    bootstrap = bootstrap or os.environ.get("REWARDSTREAM_BOOTSTRAP_SERVERS")
    if not bootstrap:
        try:
            status, started_now = LocalKafka().start()
        except LocalKafkaError as exc:
            raise BrokerUnavailable(f"{command}: could not start the local Kafka broker: {exc}") from None
        bootstrap = status.bootstrap
        say(f"kafka: {'started' if started_now else 'already running'} at {bootstrap}")
    assert bootstrap
    run_id = uuid.uuid4().hex[:8]
    prefix = f"rewardstream.{command}.{run_id}"
    settings = Settings(bootstrap_servers=bootstrap, app_id=f"rewardstream-{command}-{run_id}",
                        topic_touchpoints=f"{prefix}.touchpoints", topic_conversions=f"{prefix}.conversions",
                        topic_rewards=f"{prefix}.rewards", topic_dead_letters=f"{prefix}.dead-letters")
    ensure_topics(settings)
    return settings
