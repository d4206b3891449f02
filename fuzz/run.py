"""Run one fuzz target under atheris (libFuzzer for Python, coverage-guided over the project's code):

    .venv/bin/python -m fuzz.run TARGET [--runs N] [--seconds S] [--jobs 1]

TARGET is one of fuzz/targets.py's (avro, jsonl, http, engines). The run starts from the corpus kept in
``fuzz/corpus/<target>`` and grows a copy of it in a scratch folder (the repository keeps a small corpus);
a crashing input is written to ``fuzz/crashes/<target>/``, where ``tests/unit/test_fuzz_corpus.py`` replays it as
a regression test. Minutes per target, outside CI (a benchmark-sized job: run it under the bench lock).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
TARGET_NAMES = ("avro", "engines", "http", "jsonl")  # fuzz/targets.py's TARGETS, named before it is imported


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=TARGET_NAMES)
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs to try (libFuzzer -runs)")
    ap.add_argument("--seconds", type=int, default=600, help="stop after this long at most")
    args = ap.parse_args()
    with atheris.instrument_imports(include=["pipeline", "fuzz"]):
        from fuzz.targets import TARGETS
    crashes = HERE / "crashes" / args.target
    crashes.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rewardstream-fuzz-{args.target}-") as scratch:
        for seed in (HERE / "corpus" / args.target).iterdir():
            shutil.copy(seed, scratch)
        argv = [sys.argv[0], scratch, f"-runs={args.runs}", f"-max_total_time={args.seconds}",
                f"-artifact_prefix={crashes}/", "-print_final_stats=1", "-max_len=4096"]
        atheris.Setup(argv, TARGETS[args.target])
        atheris.Fuzz()


if __name__ == "__main__":
    main()
