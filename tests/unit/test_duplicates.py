"""A duplicated event changes nothing: not the rewards, not the journeys, not the clock. A log and the same log
with copies of its events among the lines that follow (within the allowed lateness, as an at-least-once
delivery or a replay leaves them) give byte-identical output on every path: `rewardstream backfill` with either
engine, `rewardstream fit`, and the worker's partition step with either engine. The quorum clock of a file used
to count a copy as a second vote, which moved finality and censoring (fit's journeys differed)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.attribution.learned import LearnedWeights
from pipeline.cli.main import main
from pipeline.engine import FILE_QUORUM, AttributionEngine, EngineConfig
from pipeline.native import available
from pipeline.synthetic import BAD_LINES, LogSpec, generate
from pipeline.units import HOUR_MS
from tests.unit import outputs
from tests.unit.helpers import T0, tp
from tests.unit.test_native_differential import NOW, configs, logs

pytestmark = pytest.mark.skipif(not available(), reason="the native engine is not built")


def test_a_copy_is_no_vote_in_the_clock() -> None:
    e = AttributionEngine(EngineConfig(allowed_lateness_ms=0), quorum=FILE_QUORUM)
    for i in range(FILE_QUORUM - 1):
        e.process(tp(f"t{i}", i))
    e.process(tp("t0", 0))  # the 16th line, but a copy: the clock has still seen 15 events
    assert e.watermark is None and e.stats.duplicate_touchpoints == 1
    e.process(tp("t15", 15))
    assert e.watermark == T0


@pytest.fixture(scope="module")
def logs_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("dups")
    lines = generate(LogSpec(users=700, duplicate_fraction=0, bad_lines=len(BAD_LINES), seed=5))
    doubled = outputs.with_duplicates(lines, random.Random(5), HOUR_MS)
    assert len(doubled) > len(lines) * 1.2
    clean, dup = folder / "clean.jsonl", folder / "dup.jsonl"
    clean.write_text("".join(line + "\n" for line in lines))
    dup.write_text("".join(line + "\n" for line in doubled))
    return clean, dup


@pytest.mark.parametrize("engine", ["python", "native"])
@pytest.mark.parametrize("command", ["backfill", "fit"])
def test_the_commands_write_the_same_bytes_with_duplicates(logs_pair: tuple[Path, Path], tmp_path: Path,
                                                           command: str, engine: str) -> None:
    """backfill: the rewards; fit: the learned weights and the journey counts (censored among them)."""
    extra = ["--quiet"] if command == "backfill" else ["--min-journeys", "50"]
    written = []
    for log in logs_pair:
        out = tmp_path / f"{log.stem}.out"
        assert main([command, "--input", str(log), "--output", str(out), "--engine", engine, *extra]) == 0
        written.append(out.read_bytes())
    assert written[0].count(b"\n") > 5000 if command == "backfill" else b'"censored":' in written[0]
    assert written[0] == written[1]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logs(), st.integers(0, 2**32 - 1))
def test_every_engine_path_ignores_duplicates(setup: tuple[EngineConfig, LearnedWeights | None],
                                              lines: list[str], seed: int) -> None:
    config, learned = setup
    # A touchpoint the journey cap has dropped is forgotten, so a copy of it is news to the engine: the cap is
    # out of this test's reach (see the report of issue 29).
    config = dataclasses.replace(config, max_journey_length=1000)
    rng = random.Random(seed)
    doubled = outputs.with_duplicates(lines, rng, config.allowed_lateness_ms)
    for engine in ("python", "native"):
        assert (outputs.backfill(engine, doubled, config, NOW, learned)
                == outputs.backfill(engine, lines, config, NOW, learned)), engine
        batch = rng.choice([1, 1_000_000])  # a record a step, or the whole log in one
        assert (outputs.partition(engine, outputs.records(doubled), config, NOW, batch, learned)
                == outputs.partition(engine, outputs.records(lines), config, NOW, batch, learned)), engine
