"""Summaries of an attributed-reward JSON Lines file (backfill or ``consume`` output) for the report."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.events.revisions import LatestRevisions


@dataclass
class RewardsSummary:
    per_model: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> channel -> base units
    delays_hours: list[float] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    base_currency: str = "USD"


def summarize(records: Iterable[dict[str, Any]]) -> RewardsSummary:
    """Each (user, conversion, touchpoint) pair at its latest revision, grouped by the model that split it;
    the delay of every pair that paid something."""
    latest: LatestRevisions[tuple[Any, str, str], dict[str, Any]] = LatestRevisions()
    kinds: Counter[str] = Counter()
    base = "USD"
    for r in records:
        kinds[r["kind"]] += 1
        base = r.get("base_currency") or base
        if r["kind"] in ("final", "unattributed"):
            continue
        latest.offer((r.get("user_id"), r["conversion_id"], r["touchpoint_id"]), r["revision"], r)
    per_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    delays: list[float] = []
    for _, r in latest.items():
        per_model[r.get("model") or "?"][r["channel"]] += float(r["amount"])
        if r["kind"] != "refund" and r["amount"] > 0 and r.get("delay_seconds") is not None:
            delays.append(r["delay_seconds"] / 3600.0)
    return RewardsSummary({m: dict(c) for m, c in per_model.items()}, delays, dict(kinds), base)
