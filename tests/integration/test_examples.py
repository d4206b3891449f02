"""The design document's examples in examples/ run against the real broker and a worker, unchanged apart
from their imports, and print the splits the document promises."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.stream_harness import Worker, make_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def worker_env(kafka_settings: Settings, tmp_path: Path) -> dict[str, str]:
    settings = make_settings(kafka_settings, f"rs-examples-{uuid.uuid4().hex[:8]}")
    worker = Worker(settings, None, tmp_path, "w1").start()
    env = {k: v for k, v in worker.env().items() if k not in ("REWARDSTREAM_DATADIR", "REWARDSTREAM_WEB_PORT")}
    env["PYTHONPATH"] = str(EXAMPLES.parent)
    yield env
    worker.stop()


def run_with_worker(kafka_settings: Settings, tmp_path: Path, name: str, *args: str, prefix: str) -> str:
    """Run examples/``name`` beside a worker of its own (2 s idleness) on fresh topics; its stdout."""
    settings = make_settings(kafka_settings, f"{prefix}-{uuid.uuid4().hex[:8]}")
    worker = Worker(settings, None, tmp_path, "w1", idle_timeout_seconds=2).start()
    env = {k: v for k, v in worker.env().items() if k not in ("REWARDSTREAM_DATADIR", "REWARDSTREAM_WEB_PORT")}
    env["PYTHONPATH"] = str(EXAMPLES.parent)
    try:
        proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=400)
    finally:
        worker.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _run(name: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.timeout(600)
def test_design_document_examples(worker_env: dict[str, str], tmp_path: Path) -> None:
    out = _run("basic_usage.py", worker_env, tmp_path)
    assert out.strip() == "Attributed $150.00 to touchpoint"

    out = _run("multi_touch.py", worker_env, tmp_path)
    shares = [float(x) for x in re.findall(r"Touchpoint \w{8}: \$(\d+\.\d\d)", out)]
    assert sorted(shares) == [66.66, 66.67, 66.67] and sum(shares) == pytest.approx(200.0), out  # linear, exact
    assert "Complete journey: 3 touchpoints" in out, out
    steps = re.findall(r"\d\. (\w+) campaign \(\$([\d.]+) → \$([\d.]+)\)", out)
    assert [s[0] for s in steps] == ["search", "display", "email"], out
    assert [s[1] for s in steps] == ["1.0", "0.5", "0.2"], out
    assert sorted(float(s[2]) for s in steps) == [66.66, 66.67, 66.67], out


@pytest.mark.timeout(300)
def test_trigger_attribution_without_a_touchpoint_answers_empty_not_by_timeout(worker_env: dict[str, str],
                                                                                tmp_path: Path) -> None:
    """The worker outputs an explicit unattributed event, so a conversion nobody led to returns {} as soon as
    that event is read, not after the attribution timeout (set far beyond the test's own timeout here)."""
    code = """
import asyncio, json, uuid
from pipeline.system import DelayedRewardConfig, DelayedRewardSystem

async def main():
    system = DelayedRewardSystem(DelayedRewardConfig(attribution_timeout_seconds=3600,
                                                     state_dir="state", use_database_persistence=False))
    try:
        alone = await system.trigger_attribution(f"nobody-{uuid.uuid4().hex}", "purchase", "10.00")
        user = f"someone-{uuid.uuid4().hex}"
        tid = await system.store_pending_reward(episode_id="e", user_id=user, campaign_id="c", channel="search")
        paid = await system.trigger_attribution(user, "purchase", "10.00")
        print(json.dumps({"alone": alone, "paid": paid, "tid": tid, "stats": system.stats}))
    finally:
        system.close()

asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", code], env=worker_env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["alone"] == {}
    assert result["paid"] == {result["tid"]: 10.0}
    assert result["stats"]["attributions_timed_out"] == 0


def test_examples_only_change_their_imports() -> None:
    doc = (EXAMPLES.parent / "docs" / "design" / "delayed-rewards.md").read_text()  # the team's design document
    for name, start in (("basic_usage.py", "async def basic_example"), ("multi_touch.py", "async def multi_touch")):
        body = (EXAMPLES / name).read_text()
        code = body[body.index(start):].rstrip()
        assert code in doc, f"{name} differs from the design document's example"
