"""The fuzz targets (fuzz/targets.py) over the corpus the repository keeps and every crash input a fuzzing run
wrote (fuzz/crashes/<target>/): each crash, once fixed, stays fixed. The fuzzing itself runs outside CI
(``python -m fuzz.run TARGET``); this replays what it found."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.native import available

pytestmark = pytest.mark.skipif(not available(), reason="the native engine is not built")

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
NAMES = ("avro", "engines", "http", "jsonl")
INPUTS = sorted((target, path) for target in NAMES
                for path in [*(FUZZ / "corpus" / target).iterdir(),
                             *((FUZZ / "crashes" / target).iterdir() if (FUZZ / "crashes" / target).is_dir() else [])]
                if path.is_file() and not path.name.startswith("."))


def test_every_target_has_a_corpus() -> None:
    from fuzz.run import TARGET_NAMES
    from fuzz.targets import TARGETS

    assert {target for target, _ in INPUTS} == set(TARGETS) == set(TARGET_NAMES) == set(NAMES)


@pytest.mark.parametrize(("target", "path"), INPUTS, ids=[f"{t}/{p.parent.name}/{p.name}" for t, p in INPUTS])
def test_the_target_holds_on_a_kept_input(target: str, path: Path) -> None:
    from fuzz.targets import TARGETS

    TARGETS[target](path.read_bytes())
