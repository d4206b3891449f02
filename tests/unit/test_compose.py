"""docker-compose.yml cannot run here (no Docker engine), so check it against the project's settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli.main import build_parser
from pipeline.local_kafka.broker import DEFAULT_KAFKA_VERSION
from pipeline.local_servers.endpoints import DATABASE_URL_ENV, REDIS_URL_ENV
from pipeline.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _project_services() -> dict[str, Any]:
    """The services that run the project's image (not Kafka, PostgreSQL or Redis)."""
    return {n: s for n, s in _compose()["services"].items() if s.get("image") == "rewardstream:local"}


def test_the_sinks_reach_the_compose_postgres_and_redis() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:") and services["redis"]["image"].startswith("redis:")
    ledger, cache = services["ledger"], services["cache"]
    assert ledger["command"] == ["sink", "postgres"] and cache["command"] == ["sink", "redis"]
    assert "@postgres:5432/" in ledger["environment"][DATABASE_URL_ENV]
    assert cache["environment"][REDIS_URL_ENV] == "redis://redis:6379/0"
    assert ledger["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert cache["depends_on"]["redis"]["condition"] == "service_healthy"


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_kafka_service_is_the_official_image_in_kraft_mode_at_the_projects_version() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics are created with the partition count
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    assert "9092:9092" in kafka["ports"]
    # the internal listener is what the project's services are told to use
    internal = re.search(r"INTERNAL://([\w.-]+):(\d+)", env["KAFKA_ADVERTISED_LISTENERS"])
    assert internal
    for svc in _project_services().values():
        assert svc["environment"][f"{ENV_PREFIX}BOOTSTRAP_SERVERS"] == f"{internal[1]}:{internal[2]}"


def test_project_services_use_real_commands_and_known_settings() -> None:
    known = {f"{ENV_PREFIX}{f.name.upper()}" for f in dataclasses.fields(Settings)} | {DATABASE_URL_ENV, REDIS_URL_ENV}
    commands = _subcommands()
    services = _project_services()
    assert {"topics", "worker", "demo"} <= set(services)
    for name, svc in services.items():
        assert svc["command"][0] in commands, f"{name} runs an unknown command {svc['command']}"
        env = svc["environment"]
        assert set(env) <= known, f"{name} sets unknown variables {set(env) - known}"
        settings = Settings.load(env={k: str(v) for k, v in env.items()})
        assert settings.partitions == Settings().partitions
        assert settings.topic_touchpoints == Settings().topic_touchpoints


def test_dockerfile_installs_the_package_the_services_run() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in text and 'ENTRYPOINT ["rewardstream"]' in text
    assert _compose()["services"]["topics"]["build"] == "."


def test_worker_service_keeps_state_on_a_volume_and_serves_http() -> None:
    worker = _compose()["services"]["worker"]
    env = worker["environment"]
    assert env[f"{ENV_PREFIX}DATADIR"] == "/data" and "worker-data:/data" in worker["volumes"]
    assert str(Settings.load(env={k: str(v) for k, v in env.items()}).web_port) in worker["expose"]
    assert "/stats/" in " ".join(worker["healthcheck"]["test"])
