"""Slot of an experience by (user, touchpoint id): an open-addressing hash table in two flat int arrays.

A Python dict of string keys pays for the strings, the dict slots and the int values (docs/benchmarks.md has
the figure for a million keys); this costs 4 B per table cell (2–4 cells per slot) plus the 8-byte hash kept
per slot. Linear probing with backward-shift deletion, so evictions leave no tombstones and lookups stay short
as the ring turns over.
The caller confirms a hash match against the stored ids (``same``): a 64-bit collision is never taken for a hit.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable


class IdIndex:
    def __init__(self, capacity: int) -> None:
        size = 8
        while size < 2 * capacity:
            size *= 2
        self.mask = size - 1
        self.table = array("i", [-1]) * size
        self.hashes = array("q", [0]) * capacity  # the key hash of each slot's experience

    def find(self, h: int, same: Callable[[int], bool]) -> int:
        """The slot whose key hashes to ``h`` and for which ``same(slot)`` holds; −1 if none."""
        table, hashes, mask = self.table, self.hashes, self.mask
        i = h & mask
        while True:
            slot = table[i]
            if slot < 0:
                return -1
            if hashes[slot] == h and same(slot):
                return slot
            i = (i + 1) & mask

    def insert(self, h: int, slot: int) -> None:
        table, mask = self.table, self.mask
        self.hashes[slot] = h
        i = h & mask
        while table[i] >= 0:
            i = (i + 1) & mask
        table[i] = slot

    def remove(self, slot: int) -> None:
        """Take ``slot`` out, shifting later members of its probe run back so no lookup stops short."""
        table, hashes, mask = self.table, self.hashes, self.mask
        i = hashes[slot] & mask
        while table[i] != slot:
            if table[i] < 0:
                return  # not indexed
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            other = table[j]
            if other < 0:
                break
            home = hashes[other] & mask
            # ``other`` may move back to the hole at i unless its home lies cyclically in (i, j]
            if (i < home <= j) if i <= j else (home > i or home <= j):
                continue
            table[i] = other
            i = j
        table[i] = -1
