"""deploy/kubernetes, checked offline: the base and the example overlay render with kustomize, every
rendered document validates against the schema of its API version (Kubernetes and Strimzi, compiled into
the npm packages in deploy/check), and names, ports and partition counts agree with each other and with
the project's settings and commands. `.ci/run` installs kustomize (Go proxy) and the npm packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli.main import build_parser
from pipeline.engine.config import EngineConfig
from pipeline.settings import ENV_PREFIX, Settings
from pipeline.units import DAY_MS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
CHECK = ROOT / "deploy" / "check"


def _tool(name: str, candidates: list[Path]) -> str | None:
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    return shutil.which(name)


def _require(what: str, found: object) -> None:
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing; .ci/run installs it")
        pytest.skip(f"{what} is not installed (bash .ci/run installs it)")


def _kustomize() -> str:
    cache = Path(os.environ.get("REWARDSTREAM_CACHE", Path.home() / ".cache" / "rewardstream"))
    found = _tool("kustomize", [Path(os.environ.get("KUSTOMIZE", "/nonexistent")), cache / "bin" / "kustomize"])
    _require("kustomize", found)
    assert found
    return found


def _render(target: str) -> list[dict[str, Any]]:
    out = subprocess.run([_kustomize(), "build", str(DEPLOY / target)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _validate(docs: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    _require("node and deploy/check/node_modules", shutil.which("node") and (CHECK / "node_modules").is_dir())
    proc = subprocess.run(["node", str(CHECK / "validate.mjs")], input=json.dumps(docs), capture_output=True,
                          text=True)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return _render("overlays/example")


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} documents"
    return found[0]


def test_every_manifest_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 8
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        assert docs, f
        for d in docs:
            assert "apiVersion" in d and "kind" in d, f


@pytest.mark.parametrize("target", ["base", "overlays/example"])
def test_rendered_documents_validate_against_their_schemas(target: str) -> None:
    docs = _render(target)
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "StatefulSet", "Deployment", "Service",
            "Secret", "ConfigMap", "PodDisruptionBudget"} <= kinds
    code, results = _validate(docs)
    assert code == 0 and all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert len(results) == len(docs)


def test_the_validator_rejects_invalid_documents() -> None:
    bad = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"},
            "spec": {"replicas": "three", "selector": {}, "serviceName": "s", "template": {}}},
           {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "metadata": {"name": "t"},
            "spec": {"partitions": "many"}}]
    code, results = _validate(bad)
    assert code == 1 and [r["ok"] for r in results] == [False, False]
    assert "replicas" in results[0]["error"] and "partitions" in results[1]["error"]


def test_names_ports_and_partitions_agree(overlay: list[dict[str, Any]]) -> None:
    config = _one(overlay, "ConfigMap", "rewardstream-config")["data"]
    known = {name for name, _doc, _default in Settings.documentation()}
    assert set(config) <= known, set(config) - known
    settings = Settings.load(env={k: v for k, v in config.items() if k.startswith(ENV_PREFIX)})

    # Topics: the four the settings name, one partition count everywhere, replication 3, min ISR 2.
    topics = {d["spec"]["topicName"]: d["spec"] for d in overlay if d["kind"] == "KafkaTopic"}
    assert set(topics) == {settings.topic_touchpoints, settings.topic_conversions, settings.topic_rewards,
                           settings.topic_dead_letters}
    assert {t["partitions"] for t in topics.values()} == {settings.partitions}
    assert all(t["replicas"] == 3 and t["config"]["min.insync.replicas"] == 2 for t in topics.values())
    assert settings.replication_factor == 3

    # Retention covers the attribution window plus lateness (inputs) and the refund retention (rewards).
    attribution = tomllib.loads(_one(overlay, "ConfigMap", "rewardstream-attribution")["data"]["rewardstream.toml"])
    engine = EngineConfig.from_mapping(attribution["attribution"])
    for name in (settings.topic_touchpoints, settings.topic_conversions):
        assert topics[name]["config"]["retention.ms"] >= engine.max_window_ms + engine.allowed_lateness_ms
    assert topics[settings.topic_rewards]["config"]["retention.ms"] >= engine.refund_retention_ms
    assert engine.max_window_ms == 7 * DAY_MS

    # Kafka: Strimzi's bootstrap service and CA secret names, the SCRAM user, one TLS listener.
    kafka = _one(overlay, "Kafka", "rewardstream")
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert settings.bootstrap_servers == f"rewardstream-kafka-bootstrap:{listener['port']}"
    assert listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism == "SCRAM-SHA-512"
    user = _one(overlay, "KafkaUser", settings.sasl_username)
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    pool = _one(overlay, "KafkaNodePool", "dual-role")
    assert pool["spec"]["replicas"] >= 3

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    worker_set = _one(overlay, "StatefulSet", "rewardstream-worker")
    ingest = _one(overlay, "Deployment", "rewardstream-ingest")
    for workload in (worker_set, ingest):
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"][0] in commands
        assert container["image"].startswith("registry.example.com/rewardstream:")
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["REWARDSTREAM_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == settings.sasl_username
        assert set(env) - {"POD_NAME", "POD_NAMESPACE"} <= known
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "rewardstream-cluster-ca-cert"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert settings.ssl_cafile.startswith(mounts["kafka-ca"] + "/")

    # Workers: one volume per pod at the data directory, probes on the worker's HTTP port and paths,
    # Prometheus scraping /metrics/, a disruption budget, no more replicas than partitions.
    spec = worker_set["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == settings.web_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/"  # the one view open without the token
    env = {e["name"]: e for e in container["env"]}
    assert env["REWARDSTREAM_WEB_BIND"]["value"] == "0.0.0.0"  # other workers route /journeys/ here...
    assert env["REWARDSTREAM_WEB_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"  # ...behind a token
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics/"
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(settings.web_port)
    assert settings.datadir.startswith(container["volumeMounts"][0]["mountPath"] + "/")
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == container["volumeMounts"][0]["name"]
    assert spec["serviceName"] == _one(overlay, "Service", "rewardstream-worker")["metadata"]["name"]
    assert 1 <= spec["replicas"] <= settings.partitions
    assert container["args"][1:] == ["--config", "/etc/rewardstream/rewardstream.toml"]
    pdb = _one(overlay, "PodDisruptionBudget", "rewardstream-worker")
    assert pdb["spec"]["selector"] == spec["selector"]

    # Ingest: its port, its token from the Secret, probes on /health, a Service in front.
    container = ingest["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == settings.ingest_port
    env = {e["name"]: e for e in container["env"]}
    token = env["REWARDSTREAM_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = _one(overlay, "Secret", token["name"])
    assert token["key"] in secret.get("data", {}) or token["key"] in secret.get("stringData", {})
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    service = _one(overlay, "Service", "rewardstream-ingest")
    assert service["spec"]["selector"] == ingest["spec"]["selector"]["matchLabels"]
    assert {d["metadata"].get("namespace") for d in overlay if d["kind"] != "Namespace"} == {"rewardstream"}


def test_the_ledger_and_cache_sinks_reach_their_stores(overlay: list[dict[str, Any]]) -> None:
    from pipeline.local_servers.endpoints import DATABASE_URL_ENV, REDIS_URL_ENV

    secret = _one(overlay, "Secret", "rewardstream-storage")["stringData"]
    for name, command, variable, key in (
            ("rewardstream-ledger", ["sink", "postgres"], DATABASE_URL_ENV, "database-url"),
            ("rewardstream-cache", ["sink", "redis"], REDIS_URL_ENV, "redis-url")):
        container = _one(overlay, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == command
        env = {e["name"]: e for e in container["env"]}
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "rewardstream-storage" and ref["key"] == key and key in secret
    postgres = _one(overlay, "Service", "rewardstream-postgres")["spec"]["ports"][0]["port"]
    redis = _one(overlay, "Service", "rewardstream-redis")["spec"]["ports"][0]["port"]
    assert f"@rewardstream-postgres:{postgres}/" in secret["database-url"]
    assert secret["redis-url"].startswith(f"redis://rewardstream-redis:{redis}/")
