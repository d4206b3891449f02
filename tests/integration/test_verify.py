"""`rewardstream verify`, small: generated log → Kafka → worker, checked against the backfill."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.main import main


@pytest.mark.timeout(600)
def test_verify_runs_end_to_end(kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--users", "1500", "--out", str(tmp_path), "--bootstrap", kafka_bootstrap]) == 0
    out = capsys.readouterr().out
    assert "stream equals backfill: yes" in out
    assert "shapley" in out and "conversions attributed" in out
    assert (tmp_path / "rewards.stream.jsonl").stat().st_size > 0
    assert (tmp_path / "attribution-weights.json").exists()
