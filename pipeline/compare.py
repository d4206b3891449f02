"""Compare two runs of attributed rewards (stream vs backfill) by their facts, not their arrival order.

The facts are the latest revision's amount of every (conversion, touchpoint) pair, every touchpoint's final
total, and which conversions paid nobody. Revision numbers may differ between runs (arrival order decides them);
amounts may not. Ids are scoped per user, so every key includes the user. A conversion said to be unattributed
and later attributed by a late touchpoint counts as attributed: which of the two a run says first depends on
arrival order, the end state does not.

May import: ``pipeline.events``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from pipeline.events.revisions import LatestRevisions


class Facts(NamedTuple):
    amounts: dict[tuple[str, str, str], int]  # (user, conversion, touchpoint) → amount of the latest revision
    finals: dict[tuple[str, str], int]  # (user, touchpoint) → final total
    unattributed: dict[tuple[str, str], str]  # (user, conversion) → reason, for conversions that paid nobody


def facts(records: Iterable[dict[str, Any]], skip_user: Callable[[str], bool] = lambda _: False) -> Facts:
    """Deduplicated by ``reward_id``; one id carrying two different facts is an error."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        seen = by_id.get(r["reward_id"])
        if seen is not None and seen != r:
            differ = {k: (seen.get(k), r.get(k)) for k in sorted({*seen, *r}) if seen.get(k) != r.get(k)}
            raise ValueError(f"one reward_id, two different facts: {r['reward_id']}: {differ}")
        by_id[r["reward_id"]] = r
    latest: LatestRevisions[tuple[str, str, str], int] = LatestRevisions()
    finals: dict[tuple[str, str], int] = {}
    said: LatestRevisions[tuple[str, str], str] = LatestRevisions()
    for r in by_id.values():
        user = r["user_id"]
        if skip_user(user):
            continue
        if r["kind"] == "final":
            finals[(user, r["touchpoint_id"])] = r["amount_minor"]
        elif r["kind"] == "unattributed":
            said.offer((user, r["conversion_id"]), r["revision"], r["reason"])
        else:
            latest.offer((user, r["conversion_id"], r["touchpoint_id"]), r["revision"], r["amount_minor"])
    amounts: dict[tuple[str, str, str], int] = {k: v for k, v in latest.items()}
    paid = {(user, cid) for user, cid, _ in amounts}
    return Facts(amounts, finals, {k: reason for k, reason in said.items() if k not in paid})


def differences(got: Facts, expected: Facts) -> list[str]:
    """Human-readable differences; empty when the runs agree."""
    return (_diff("amount", dict(got.amounts), dict(expected.amounts))
            + _diff("final", dict(got.finals), dict(expected.finals))
            + _diff("unattributed conversion", dict(got.unattributed), dict(expected.unattributed)))


def _diff(name: str, got: dict[Any, Any], expected: dict[Any, Any]) -> list[str]:
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
