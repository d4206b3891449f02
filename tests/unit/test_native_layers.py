"""The native core's modules form layers: each uses only the modules `native/src/lib.rs` declares before it (and
`bindings/mod.rs` likewise within the bindings), test code included, so there is no import circle to untangle."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "native" / "src"

pytestmark = pytest.mark.skipif(not (SRC / "lib.rs").exists(), reason="no native sources (an installed package)")

_MOD = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;", re.M)
_USE = re.compile(r"crate::(\w+)(?:::(\w+))?|crate::\{([^}]*)\}")


def _order(file: Path) -> list[str]:
    return _MOD.findall(file.read_text())


def _uses(text: str) -> set[str]:
    """Modules of the crate a file names (a `bindings` module as `bindings::name`)."""
    found: set[str] = set()
    for m in _USE.finditer(text):
        if m.group(3) is not None:
            found.update(p.strip().split("::")[0] for p in m.group(3).split(",") if p.strip())
        elif m.group(1) == "bindings" and m.group(2):
            found.add(f"bindings::{m.group(2)}")
        else:
            found.add(m.group(1))
    return found


def _layers() -> dict[str, tuple[int, Path]]:
    """Each module's place in the declared order, and its file."""
    top = [m for m in _order(SRC / "lib.rs") if m != "fuzz"]  # the fuzz target is test code over everything
    inner = _order(SRC / "bindings" / "mod.rs")
    places: dict[str, tuple[int, Path]] = {}
    for i, name in enumerate(top):
        if name == "bindings":
            for j, sub in enumerate(inner):
                places[f"bindings::{sub}"] = (i * 100 + j, SRC / "bindings" / f"{sub}.rs")
        else:
            places[name] = (i * 100, SRC / f"{name}.rs")
    return places


def test_every_module_is_declared_and_found() -> None:
    places = _layers()
    files = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.rs")}
    declared = {p.relative_to(SRC).as_posix() for _, p in places.values()}
    assert files - declared == {"lib.rs", "fuzz.rs", "bindings/mod.rs"}


def test_a_module_uses_only_the_layers_declared_before_it() -> None:
    places = _layers()
    upward = []
    for name, (place, path) in places.items():
        for used in _uses(path.read_text()):
            if used != name and (used == "bindings" or (used in places and places[used][0] >= place)):
                upward.append(f"{name} uses {used}")
    assert not upward, "native modules using modules declared after them in lib.rs: " + ", ".join(sorted(upward))
