"""Every part of the package says in its docstring what of the package it may import (``May import: ...``), and
imports nothing else: checked from the source, so an import inside a function counts as much as one at the top.
The declared imports form layers (no part reaches, directly or not, back to itself).

A part is a package under ``pipeline/`` or a module directly in it; the root package and the native extension
(``pipeline._native``, a leaf every part may load) are parts too. ``test_layers`` checks the same order by what
importing a module loads, external shells (Kafka clients, Faust, RocksDB) included."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "pipeline"
EXTENSION = "pipeline._native"


def part_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def parts() -> dict[str, Path]:
    """Each part's name → the file whose docstring declares it."""
    found = {"pipeline": ROOT / "__init__.py"}
    for path in sorted(ROOT.iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            found[f"pipeline.{path.name}"] = path / "__init__.py"
        elif path.suffix == ".py" and path.name != "__init__.py":
            found[f"pipeline.{path.stem}"] = path
    return found


def declared(path: Path) -> set[str] | None:
    """The parts named in the docstring's ``May import:`` paragraph; None without one."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    match = re.search(r"May import:(.*?)(?:\n\n|\Z)", doc, re.S)
    if match is None:
        return None
    return set(re.findall(r"pipeline\.\w+", match.group(1)))


def imported(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of the package in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "pipeline":  # from pipeline import x: x is the part
                yield from ((node.lineno, f"pipeline.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, target


@functools.cache
def actual_imports() -> dict[str, set[tuple[str, str]]]:
    """Each part → (where, the other part) for every import of another part."""
    found: dict[str, set[tuple[str, str]]] = {name: set() for name in parts()}
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        source = part_of(module)
        for line, target in imported(path, module):
            other = part_of(target)
            if target.startswith("pipeline") and other not in (source, EXTENSION):
                found[source].add((f"{path.relative_to(ROOT.parent)}:{line}", other))
    return found


def test_every_part_declares_what_it_may_import() -> None:
    missing = [str(path.relative_to(ROOT.parent)) for path in parts().values() if declared(path) is None]
    assert not missing, f"no 'May import:' paragraph in the docstring of {missing}"


@pytest.mark.parametrize("part", sorted(parts()))
def test_a_part_imports_only_what_it_declares(part: str) -> None:
    allowed = declared(parts()[part]) or set()
    undeclared = sorted((where, other) for where, other in actual_imports()[part] if other not in allowed)
    assert not undeclared, f"{part} imports parts its docstring does not declare: {undeclared}"


def test_the_declared_imports_form_layers() -> None:
    graph = {part: declared(path) or set() for part, path in parts().items()}
    unknown = {part: deps - set(graph) for part, deps in graph.items() if deps - set(graph)}
    assert not unknown, f"declared imports of parts that do not exist: {unknown}"
    state: dict[str, str] = {}

    def visit(part: str, path: list[str]) -> None:
        if state.get(part) == "done":
            return
        assert state.get(part) != "open", f"an import circle: {' -> '.join([*path, part])}"
        state[part] = "open"
        for dep in sorted(graph[part]):
            visit(dep, [*path, part])
        state[part] = "done"

    for part in sorted(graph):
        visit(part, [])


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    source = tmp_path / "late.py"
    source.write_text('"""Doc.\n\nMay import: ``pipeline.events``."""\n\n\ndef f() -> None:\n'
                      "    from pipeline.engine import x\n    from ..money import y\n")
    assert declared(source) == {"pipeline.events"}
    assert list(imported(source, "pipeline.stream.late")) == [(7, "pipeline.engine"), (8, "pipeline.money")]
