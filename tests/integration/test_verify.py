"""`rewardstream verify` as a user runs it: its exit code, its report and the files it leaves.

Whether a worker's output equals the backfill is test_stream's question (both runtimes, at size, through
crashes); this runs the command on a small log only to check the command itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli.main import main


@pytest.mark.timeout(600)
def test_verify_runs_end_to_end(kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--users", "300", "--out", str(tmp_path), "--bootstrap", kafka_bootstrap]) == 0
    out = capsys.readouterr().out
    assert "stream equals backfill: yes" in out
    assert "shapley" in out and "conversions attributed" in out
    assert (tmp_path / "rewards.stream.jsonl").stat().st_size > 0
    assert (tmp_path / "attribution-weights.json").exists()
