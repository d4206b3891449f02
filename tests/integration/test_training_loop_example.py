"""examples/training_loop.py against the real broker and a worker: it trains on final attributed rewards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.test_examples import run_with_worker


@pytest.mark.timeout(600)
def test_training_loop_example(kafka_settings: Settings, tmp_path: Path) -> None:
    stdout = run_with_worker(kafka_settings, tmp_path, "training_loop.py", "10", prefix="rs-loop")
    trained = re.findall(r"trained on 256 final experiences .* delayed updates reported in info: ([\d,]+)",
                         stdout)
    assert len(trained) >= 2, stdout  # final rewards arrive once the 7-day window has closed
    assert int(trained[-1].replace(",", "")) > 0, stdout
    assert re.search(r"buffer: [\d,]+ experiences, [\d,]+ final, [1-9][\d,]* conversions attributed", stdout)
