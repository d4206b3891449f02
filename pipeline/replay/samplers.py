"""How a batch's slots are chosen: uniformly, uniformly among final experiences, or by priority.

Prioritized replay follows Schaul et al. (ICLR 2016), proportional variant: P(i) = p_i^α / Σ p^α; a new
experience, and one whose reward has just changed, gets the largest priority given so far (so it is drawn at
least once before a trainer's |TD error| sets its own); importance weights w_i = (N·P(i))^−β with β annealed
toward 1, normalized by the buffer's largest weight (from the min tree: TorchRL's and the paper's form) or,
on request, by the batch's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from pipeline.replay.priority_trees import Trees, priority_trees

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def draw_uniform(rng: np.random.Generator, n: int, population: int) -> IntArray:
    picks: IntArray = (rng.random(n) * population).astype(np.int64)  # faster than rng.integers
    return picks


class FinalSlots:
    """The slots of final experiences, compact, so a final-only draw costs what a plain one does."""

    def __init__(self, capacity: int) -> None:
        self.slots = np.zeros(capacity, dtype=np.int32)
        self.pos = np.full(capacity, -1, dtype=np.int32)
        self.n = 0

    def add(self, slot: int) -> None:
        self.slots[self.n] = slot
        self.pos[slot] = self.n
        self.n += 1

    def discard(self, slot: int) -> None:
        pos = int(self.pos[slot])
        if pos < 0:
            return
        last = int(self.slots[self.n - 1])
        self.slots[pos] = last
        self.pos[last] = pos
        self.pos[slot] = -1
        self.n -= 1

    def draw(self, rng: np.random.Generator, n: int) -> IntArray:
        picked: IntArray = self.slots[draw_uniform(rng, n, self.n)].astype(np.int64)
        return picked


@dataclass(frozen=True)
class Priorities:
    """``alpha``: how much priority counts (0: uniform). ``beta``: importance-weight exponent at the start,
    annealed linearly to ``beta_end`` over ``beta_anneal_draws`` batches (0: fixed). ``eps`` keeps a zero
    |TD error| drawable. ``normalize``: "buffer" divides weights by the largest any row could get (the
    default), "batch" by the largest in the batch."""

    alpha: float = 0.6
    beta: float = 0.4
    beta_end: float = 1.0
    beta_anneal_draws: int = 0
    eps: float = 1e-6
    normalize: Literal["buffer", "batch"] = "buffer"

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0 or self.beta_end < 0 or self.eps < 0 or self.beta_anneal_draws < 0:
            raise ValueError("alpha, beta, beta_end, eps and beta_anneal_draws must be non-negative")
        if self.normalize not in ("buffer", "batch"):
            raise ValueError("normalize is 'buffer' or 'batch'")


class PrioritizedSampler:
    """Leaf priorities p^α in a sum tree and a min tree; every change is written at once (no draw pays for
    earlier ones)."""

    def __init__(self, capacity: int, config: Priorities) -> None:
        self.config = config
        self.trees: Trees = priority_trees(capacity)
        self.max_priority = 1.0  # in leaf units (p^α): what new and changed experiences get
        self._beta = config.beta

    @property
    def beta(self) -> float:
        return self._beta

    def set_beta(self, beta: float) -> None:
        """Set β by hand (a trainer with its own schedule); annealing, if configured, goes on from here."""
        if beta < 0:
            raise ValueError("beta must be non-negative")
        self._beta = beta

    def fresh(self, slot: int, eligible: bool = True) -> None:
        """A new experience, or one with new information (its reward changed): the largest priority."""
        self.trees.set_one(slot, self.max_priority if eligible else 0.0)

    def remove(self, slot: int) -> None:
        self.trees.set_one(slot, 0.0)

    def set(self, slots: IntArray, priorities: FloatArray) -> None:
        """Trainer priorities (|TD error|) of held slots."""
        leaf = (priorities + self.config.eps) ** self.config.alpha
        if len(leaf):
            self.max_priority = max(self.max_priority, float(leaf.max()))
        self.trees.set(slots, leaf)

    def draw(self, rng: np.random.Generator, n: int, population: int) -> tuple[IntArray, FloatArray]:
        total = self.trees.total
        if total <= 0.0:
            raise LookupError("no experience has a positive priority (none final yet?)")
        slots = np.empty(n, dtype=np.int64)
        prios = np.empty(n, dtype=np.float64)
        self.trees.find(rng.random(n) * total, slots, prios)
        beta = self._beta
        if self.config.normalize == "buffer":
            weights = (prios / self.trees.min_positive) ** -beta  # = (N·P(i))^-β / max_j (N·P(j))^-β
        else:
            weights = (population * prios / total) ** -beta
            weights /= weights.max()
        cfg = self.config
        if cfg.beta_anneal_draws:
            step = (cfg.beta_end - cfg.beta) / cfg.beta_anneal_draws
            moved = self._beta + step
            self._beta = min(moved, cfg.beta_end) if step > 0 else max(moved, cfg.beta_end)
        return slots, weights
