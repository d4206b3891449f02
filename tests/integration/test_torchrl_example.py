"""examples/torchrl_trainer.py against the real broker and a worker (skipped where torchrl is not installed:
torch is no dependency of the package)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.test_examples import run_with_worker

pytest.importorskip("torchrl")


@pytest.mark.timeout(600)
def test_torchrl_trainer_example(kafka_settings: Settings, tmp_path: Path) -> None:
    stdout = run_with_worker(kafka_settings, tmp_path, "torchrl_trainer.py", "10", prefix="rs-torchrl")
    days = re.findall(r"20 prioritized batches of 256 final experiences, weighted loss +([\d.]+), beta ([\d.]+)",
                      stdout)
    assert len(days) >= 2, stdout  # final rewards arrive once the 7-day window has closed
    betas = [float(b) for _, b in days]
    assert betas == sorted(betas) and betas[-1] > betas[0], stdout  # annealed
    assert re.search(r"buffer: [\d,]+ experiences, [\d,]+ final, [1-9][\d,]* conversions attributed", stdout)
