"""examples/training_loop.py against the real broker and a worker: it trains on final attributed rewards."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.integration.stream_harness import Worker, make_settings
from tests.integration.test_examples import EXAMPLES


@pytest.mark.timeout(600)
def test_training_loop_example(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = make_settings(kafka_settings, f"rs-loop-{uuid.uuid4().hex[:8]}")
    worker = Worker(settings, None, tmp_path, "w1", idle_timeout_seconds=2).start()
    env = {k: v for k, v in worker.env().items() if k not in ("REWARDSTREAM_DATADIR", "REWARDSTREAM_WEB_PORT")}
    env["PYTHONPATH"] = str(EXAMPLES.parent)
    try:
        proc = subprocess.run([sys.executable, str(EXAMPLES / "training_loop.py"), "10"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=400)
    finally:
        worker.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = re.findall(r"trained on 256 final experiences .* delayed updates reported in info: ([\d,]+)",
                         proc.stdout)
    assert len(trained) >= 2, proc.stdout  # final rewards arrive once the 7-day window has closed
    assert int(trained[-1].replace(",", "")) > 0, proc.stdout
    assert re.search(r"buffer: [\d,]+ experiences, [\d,]+ final, [1-9][\d,]* conversions attributed", proc.stdout)
