"""The engine choice (``pipeline.native.choice``): ``auto`` runs the native engine when it is installed and falls
back to the Python engine with one warning when it is not; ``native`` by name without the module is an error.

An install without the module is reproduced in a fresh interpreter in which ``pipeline._native`` cannot be
imported (as after an sdist install without Rust), running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.native import available
from pipeline.native.choice import DEFAULT_ENGINE, resolve
from pipeline.settings import Settings
from pipeline.synthetic import LogSpec, generate, write_engine_config

# the CLI in a process where the native module is missing, as an install without Rust leaves it
WITHOUT_NATIVE = ("import sys; sys.modules['pipeline._native'] = None; from pipeline.cli.main import main; "
                  "sys.exit(main(sys.argv[1:]))")


def _cli(args: list[str], engine: str | None, *, native: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REWARDSTREAM_ENGINE"}
    if engine is not None:
        env["REWARDSTREAM_ENGINE"] = engine
    code = WITHOUT_NATIVE if not native else WITHOUT_NATIVE.replace("sys.modules['pipeline._native'] = None; ", "")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("choice")
    (d / "log.jsonl").write_text("\n".join(generate(LogSpec(users=150, seed=9, bad_lines=2))) + "\n")
    return d / "log.jsonl", write_engine_config(d / "config.toml")


def _backfill(log: tuple[Path, Path], out: Path) -> list[str]:
    return ["backfill", "--input", str(log[0]), "--output", str(out), "--config", str(log[1]), "--quiet"]


def test_the_default_is_auto_and_every_name_is_known() -> None:
    assert DEFAULT_ENGINE == "auto" and Settings().engine == DEFAULT_ENGINE
    assert resolve("python") == "python"
    with pytest.raises(ValueError, match="engine must be one of"):
        resolve("rust")
    if available():
        assert resolve("auto") == resolve("native") == "native"


def test_without_the_native_module_auto_falls_back_with_one_warning_line(log: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    fell_back = _cli(_backfill(log, tmp_path / "auto.jsonl"), None, native=False)
    assert fell_back.returncode == 0, fell_back.stderr
    warning = [line for line in fell_back.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "native engine is not installed" in warning[0] and "Python engine" in warning[0]

    # the fallback is the Python engine, whose output is the native engine's (the differential tests' rule)
    python = _cli(_backfill(log, tmp_path / "python.jsonl"), "python", native=True)
    assert python.returncode == 0 and python.stderr == ""
    assert (tmp_path / "auto.jsonl").read_bytes() == (tmp_path / "python.jsonl").read_bytes()
    if available():
        assert _cli(_backfill(log, tmp_path / "native.jsonl"), None, native=True).returncode == 0
        assert (tmp_path / "native.jsonl").read_bytes() == (tmp_path / "python.jsonl").read_bytes()


def test_without_the_native_module_python_by_name_says_nothing(log: tuple[Path, Path], tmp_path: Path) -> None:
    done = _cli(_backfill(log, tmp_path / "out.jsonl"), "python", native=False)
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.parametrize("how", ["env", "flag", "fit"])
def test_without_the_native_module_native_by_name_is_a_clear_error(log: tuple[Path, Path], tmp_path: Path,
                                                                   how: str) -> None:
    args = _backfill(log, tmp_path / "out.jsonl")
    if how == "flag":
        args += ["--engine", "native"]
    if how == "fit":
        args = ["fit", "--input", str(log[0]), "--output", str(tmp_path / "w.json"), "--config", str(log[1]),
                "--engine", "native"]
    done = _cli(args, "native" if how == "env" else None, native=False)
    assert done.returncode == 2
    assert "engine 'native' was asked for, but the native engine is not installed" in done.stderr
    assert "Traceback" not in done.stderr
