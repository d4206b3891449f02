"""The attributed-reward topic's one rule for corrections, in one place.

Each (user, conversion, touchpoint) pair counts once, at its latest revision: a correction replaces the earlier
share, a redelivered or older revision changes nothing. Every reader that folds rewards (the replay buffer, the
stream-vs-backfill comparison, the report) goes through :func:`supersedes` or :class:`LatestRevisions`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def supersedes(revision: int, previous: int | None) -> bool:
    """True if a pair's ``revision`` replaces what is held at ``previous`` (None: nothing held yet)."""
    return previous is None or revision > previous


class LatestRevisions(Generic[K, V]):
    """Key → the value of its latest revision."""

    def __init__(self) -> None:
        self._latest: dict[K, tuple[int, V]] = {}

    def offer(self, key: K, revision: int, value: V) -> bool:
        """Keep ``value`` if ``revision`` supersedes the key's; False when it is stale or repeated."""
        held = self._latest.get(key)
        if not supersedes(revision, None if held is None else held[0]):
            return False
        self._latest[key] = (revision, value)
        return True

    def items(self) -> Iterator[tuple[K, V]]:
        return ((k, v) for k, (_, v) in self._latest.items())

    def __contains__(self, key: object) -> bool:
        return key in self._latest

    def __len__(self) -> int:
        return len(self._latest)
