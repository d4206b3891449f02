"""Compare two runs of attributed rewards (stream vs backfill) by their facts, not their arrival order.

The facts are the latest revision's amount of every (conversion, touchpoint) pair, and every touchpoint's
final total. Revision numbers may differ between runs (arrival order decides them); amounts may not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Facts = tuple[dict[tuple[str, str], int], dict[str, int]]


def facts(records: Iterable[dict[str, Any]], skip_user: Callable[[str], bool] = lambda _: False) -> Facts:
    """Deduplicated by ``reward_id``; one id carrying two different facts is an error."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        seen = by_id.get(r["reward_id"])
        if seen is not None and seen != r:
            raise ValueError(f"one reward_id, two different facts: {r['reward_id']}")
        by_id[r["reward_id"]] = r
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    finals: dict[str, int] = {}
    for r in by_id.values():
        if skip_user(r["user_id"]):
            continue
        if r["kind"] == "final":
            finals[r["touchpoint_id"]] = r["amount_minor"]
            continue
        key = (r["conversion_id"], r["touchpoint_id"])
        if key not in latest or r["revision"] > latest[key][0]:
            latest[key] = (r["revision"], r["amount_minor"])
    return {k: v for k, (_, v) in latest.items()}, finals


def differences(got: Facts, expected: Facts) -> list[str]:
    """Human-readable differences; empty when the runs agree."""
    return _diff("amount", dict(got[0]), dict(expected[0])) + _diff("final", dict(got[1]), dict(expected[1]))


def _diff(name: str, got: dict[Any, int], expected: dict[Any, int]) -> list[str]:
    out = []
    missing = expected.keys() - got.keys()
    extra = got.keys() - expected.keys()
    wrong = [k for k in got.keys() & expected.keys() if got[k] != expected[k]]
    if missing:
        out.append(f"{len(missing)} {name}s missing, e.g. {sorted(missing, key=str)[:3]}")
    if extra:
        out.append(f"{len(extra)} unexpected {name}s, e.g. {sorted(extra, key=str)[:3]}")
    if wrong:
        out.append(f"{len(wrong)} {name}s differ, e.g. {[(k, got[k], expected[k]) for k in wrong[:3]]}")
    return out
