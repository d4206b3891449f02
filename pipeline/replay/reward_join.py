"""The join of attributed rewards onto held experiences: which pairs each experience has been paid by, rewards
that arrived before their touchpoint, and what was counted.

Reward rules (the attributed-reward topic's contract, ``pipeline.events.revisions``):
- each (conversion or refund, touchpoint) pair counts once at its latest revision;
- refunds are pairs too, with negative amounts;
- ``final`` marks the touchpoint's window as closed; refunds dated later may still arrive as pairs.
Pairs are held per slot only for experiences a conversion has paid (a few percent of rows), so rows that
nothing has paid cost nothing here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from pipeline.events.revisions import supersedes
from pipeline.events.types import AttributedReward, RewardKind


class Pair(NamedTuple):
    revision: int
    amount_minor: int
    conversion_ms: int
    refund: bool


class RewardJoin:
    COUNTERS = ("rewards_applied", "rewards_stale", "orphans_dropped", "evicted", "conversions_unattributed")

    def __init__(self, max_pending: int) -> None:
        self.pairs: dict[int, dict[str, Pair]] = {}  # slot → conversion id → its pair
        self.pending: OrderedDict[str, list[AttributedReward]] = OrderedDict()  # touchpoint id → early rewards
        self.max_pending = max_pending
        self.conversion_refs: dict[str, int] = {}  # conversion id → held experiences it paid
        self.dirty_pending: set[str] = set()
        self.rewards_applied = 0
        self.rewards_stale = 0
        self.orphans_dropped = 0
        self.evicted = 0
        self.conversions_unattributed = 0

    def pair(self, slot: int, r: AttributedReward) -> tuple[int, int] | None:
        """Fold a pair reward into ``slot``: (change of its attributed minor units, first paid time or −1), or
        None if the revision is stale or repeated."""
        pairs = self.pairs.get(slot)
        key = r.conversion_id or ""
        prev = pairs.get(key) if pairs is not None else None
        if not supersedes(r.revision, None if prev is None else prev.revision):
            self.rewards_stale += 1
            return None
        if pairs is None:
            pairs = self.pairs[slot] = {}
        refund = r.kind == RewardKind.REFUND
        pairs[key] = Pair(r.revision, r.amount_minor, r.conversion_time_ms or 0, refund)
        if prev is None and not refund:
            self.conversion_refs[key] = self.conversion_refs.get(key, 0) + 1
        self.rewards_applied += 1
        return r.amount_minor - (prev.amount_minor if prev is not None else 0), first_paid(pairs)

    def park(self, r: AttributedReward) -> None:
        """A reward whose touchpoint is not held (yet): kept, oldest dropped beyond ``max_pending``."""
        self.pending.setdefault(r.touchpoint_id, []).append(r)
        self.pending.move_to_end(r.touchpoint_id)
        self.dirty_pending.add(r.touchpoint_id)
        while len(self.pending) > self.max_pending:
            old, dropped = self.pending.popitem(last=False)
            self.dirty_pending.add(old)
            self.orphans_dropped += len(dropped)

    def waiting(self, touchpoint_id: str) -> list[AttributedReward]:
        waiting = self.pending.pop(touchpoint_id, None)
        if waiting is None:
            return []
        self.dirty_pending.add(touchpoint_id)
        return waiting

    def forget(self, slot: int) -> None:
        """The experience in ``slot`` is evicted."""
        for key, pair in (self.pairs.pop(slot, None) or {}).items():
            if not pair.refund:
                left = self.conversion_refs[key] - 1
                if left:
                    self.conversion_refs[key] = left
                else:
                    del self.conversion_refs[key]
        self.evicted += 1

    def restore(self, slot: int, pairs: dict[str, Pair]) -> None:
        if pairs:
            self.pairs[slot] = pairs
        for key, pair in pairs.items():
            if not pair.refund:
                self.conversion_refs[key] = self.conversion_refs.get(key, 0) + 1

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}

    def set_counters(self, values: dict[str, int]) -> None:
        for name in self.COUNTERS:
            if name in values:
                setattr(self, name, int(values[name]))


def first_paid(pairs: dict[str, Pair]) -> int:
    """Time of the earliest conversion whose pair pays something (−1: none does)."""
    paid = [p.conversion_ms for p in pairs.values() if p.amount_minor > 0]
    return min(paid) if paid else -1
