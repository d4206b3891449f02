"""The trees behind prioritized sampling: a sum tree (draws with P(i) = p_i / Σp) and a min tree (the smallest
positive priority, which gives the buffer-wide largest importance weight).

The native core's ``PriorityTrees`` walks each leaf up in Rust. Without the native build,
:class:`NumpyPriorityTrees` does the same a tree level at a time, slower but vectorised (figures:
docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Trees(Protocol):
    @property
    def total(self) -> float: ...
    @property
    def min_positive(self) -> float: ...
    def set_one(self, slot: int, value: float) -> None: ...
    def set(self, slots: IntArray, values: FloatArray) -> None: ...
    def set_all(self, values: FloatArray) -> None: ...
    def get(self, slots: IntArray, out: FloatArray) -> None: ...
    def find(self, targets: FloatArray, out: IntArray, prios: FloatArray) -> None: ...


def priority_trees(capacity: int) -> Trees:
    try:
        from pipeline import _native
    except ImportError:
        return NumpyPriorityTrees(capacity)
    trees: Trees = _native.PriorityTrees(capacity)  # type: ignore[attr-defined,unused-ignore]
    return trees


class NumpyPriorityTrees:
    """The same contract as the native trees, in numpy (the fallback, and the reference its tests compare)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        size = 1
        while size < capacity:
            size *= 2
        self.leaves = size
        self.capacity = capacity
        self.sum = np.zeros(2 * size, dtype=np.float64)  # node k has children 2k, 2k+1; leaves at size..2size-1
        self.min = np.full(2 * size, np.inf, dtype=np.float32)  # it only scales weights (as in the native trees)

    @property
    def total(self) -> float:
        return float(self.sum[1])

    @property
    def min_positive(self) -> float:
        return float(self.min[1])

    def set_one(self, slot: int, value: float) -> None:
        self.set(np.array([slot], dtype=np.int64), np.array([value], dtype=np.float64))

    def set(self, slots: IntArray, values: FloatArray) -> None:
        if len(slots) == 0:
            return
        if len(slots) != len(values):
            raise ValueError(f"{len(slots)} slots but {len(values)} values")
        if slots.min() < 0 or slots.max() >= self.capacity:
            raise IndexError("slot outside the trees")
        nodes = np.asarray(slots, dtype=np.int64) + self.leaves
        self.sum[nodes] = values
        self.min[nodes] = np.where(values > 0, np.maximum(values, np.finfo(np.float32).tiny), np.inf)
        nodes = np.unique(nodes >> 1)
        while nodes[0] >= 1:  # a one-leaf tree has no parents (its root is the leaf)
            self.sum[nodes] = self.sum[2 * nodes] + self.sum[2 * nodes + 1]
            self.min[nodes] = np.minimum(self.min[2 * nodes], self.min[2 * nodes + 1])
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes >> 1)

    def set_all(self, values: FloatArray) -> None:
        leaves = np.zeros(self.leaves)
        leaves[: len(values)] = values
        self.sum[self.leaves:] = leaves
        self.min[self.leaves:] = np.where(leaves > 0, np.maximum(leaves, np.finfo(np.float32).tiny), np.inf)
        level = self.leaves
        while level > 1:
            parents = np.arange(level // 2, level)
            self.sum[parents] = self.sum[2 * parents] + self.sum[2 * parents + 1]
            self.min[parents] = np.minimum(self.min[2 * parents], self.min[2 * parents + 1])
            level //= 2

    def get(self, slots: IntArray, out: FloatArray) -> None:
        out[:] = self.sum[np.asarray(slots, dtype=np.int64) + self.leaves]

    def find(self, targets: FloatArray, out: IntArray, prios: FloatArray) -> None:
        nodes = np.ones(len(targets), dtype=np.int64)
        values = np.array(targets, dtype=np.float64)
        while nodes[0] < self.leaves:
            left = 2 * nodes
            left_sum = self.sum[left]
            # rounding can leave a value a hair above the left sum when the right side is empty: stay left
            go_right = (values >= left_sum) & (self.sum[left + 1] > 0.0)
            values -= np.where(go_right, left_sum, 0.0)
            nodes = left + go_right
        out[:] = nodes - self.leaves
        prios[:] = self.sum[nodes]
