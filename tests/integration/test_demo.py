"""The README's main job, small: the same code path as `make demo` (a smaller market), on the test broker;
then `report` draws the attribution pictures for a backfill of the run's events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cli.main import main


@pytest.mark.timeout(600)
def test_market_demo_runs_end_to_end(kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "demo"
    assert main(["demo", "--days", "10", "--impressions-per-hour", "20", "--out", str(out_dir),
                 "--bootstrap", kafka_bootstrap]) == 0
    out = capsys.readouterr().out
    assert re.search(r"day\s+10/10 \| worker\s+[\d,]+ events/s", out), out
    for name in ("oracle (knows the market)", "provisional agent", "attribution agent", "click agent"):
        assert re.search(rf"{re.escape(name)}\s+[\d,]+\s+[\d,.]+", out), out
    assert "every day's data complete: yes" in out, out
    assert (out_dir / "report.png").stat().st_size > 50_000
    events = out_dir / "events.jsonl"
    assert events.stat().st_size > 0

    rewards = tmp_path / "rewards.jsonl"
    assert main(["backfill", "--input", str(events), "--output", str(rewards), "--quiet",
                 "--config", str(out_dir / "rewardstream.toml")]) == 0
    assert main(["report", "--input", str(rewards)]) == 0
    report = capsys.readouterr().out
    assert re.search(r"linear\s+display [\d,.]+", report), report
    assert rewards.with_suffix(".png").stat().st_size > 30_000
