"""deploy/monitoring: the Prometheus alerting rules pass ``promtool check rules`` and their own ``promtool test
rules`` cases, and every query of the rules and of the Grafana dashboard names only metrics a worker's
``/metrics/`` exports (the text ``pipeline.shell.views.prometheus_text`` makes of a worker's real stats).
``make deploy-tools`` (CI) builds promtool from the Go module proxy into the cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.engine import EngineConfig
from pipeline.settings import Settings
from pipeline.shell.idleness import Idleness
from pipeline.shell.views import prometheus_text
from pipeline.stream.redelivery import Redelivery
from pipeline.stream.worker import StreamWorker

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"

# PromQL's own words the queries use (functions, aggregations, operators) and Grafana's label_values
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "deriv", "absent", "clamp_min",
                "by", "without", "and", "or", "unless", "on", "ignoring", "bool", "label_values"}


def _promtool() -> str:
    cache = Path(os.environ.get("REWARDSTREAM_CACHE", Path.home() / ".cache" / "rewardstream"))
    found = next((str(c) for c in (cache / "bin" / "promtool",) if c.is_file() and os.access(c, os.X_OK)),
                 shutil.which("promtool"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing; `make deploy-tools` (run by .ci/run) builds it")
        pytest.skip("promtool is not installed (make deploy-tools)")
    return found


def exported() -> set[str]:
    """The metric families of a worker's /metrics/, from a real worker's stats (with a watermark lag and a
    model's count, which a worker has once it owns a partition and attributed a conversion)."""
    settings = Settings()
    worker = StreamWorker(settings, EngineConfig(), None, table=None, output=None,  # type: ignore[arg-type]
                          idleness=Idleness(5, 0), redelivery=Redelivery(), on_failure=print,
                          hole_reader=None)  # type: ignore[arg-type]
    stats = worker.stats_json() | {"watermark_lag_seconds": 12.5, "per_model": {"linear": 3}}
    return {line.split()[2] for line in prometheus_text(stats).splitlines() if line.startswith("# TYPE ")}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values query) reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)  # label lists
    e = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", e)
    e = re.sub(r"\$\w+", "", e)  # Grafana variables
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?(e[-+]?\d+)?", "", e)  # numbers
    return {t for t in re.findall(r"[A-Za-z_:][\w:]*", e) if t not in PROMQL_WORDS}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    queries += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return queries


def test_metric_names_are_read_from_queries() -> None:
    assert metric_names('sum by (model) (rate(a_total{x=~"$i"}[$__rate_interval])) / clamp_min(b, 1e-9)') == \
        {"a_total", "b"}
    assert metric_names("deriv(sum(c)[2h:5m]) > 0 and max(d) > 3 * 3600") == {"c", "d"}
    assert metric_names("label_values(e_total, instance)") == {"e_total"}
    assert metric_names("up == 0") == {"up"}


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_query_names_only_exported_metrics(source: str) -> None:
    queries = [r["expr"] for r in _rules()] if source == "rules" else _dashboard_queries()
    names = set().union(*map(metric_names, queries))
    assert names and names <= exported(), sorted(names - exported())


def test_the_kit_covers_what_an_operator_watches() -> None:
    dashboard = set().union(*map(metric_names, _dashboard_queries()))
    rules = set().union(*(metric_names(r["expr"]) for r in _rules()))
    watched = {"rewardstream_watermark_lag_seconds", "rewardstream_rewards_out_total",
               "rewardstream_dead_letters_total", "rewardstream_events_in_total"}
    assert watched <= dashboard and watched <= rules


def test_promtool_accepts_the_rules_and_their_cases_pass() -> None:
    promtool = _promtool()
    checked = subprocess.run([promtool, "check", "rules", str(MONITORING / "alerts.yaml")], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts.test.yaml"], cwd=MONITORING, capture_output=True,
                            text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # every alert has a case in which it fires
    fired = {t["alertname"] for case in yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
             for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert fired == {r["alert"] for r in _rules()}
