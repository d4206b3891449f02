"""The cache's keys, under a namespace (by default the rewards topic), so that two deployments or test runs on
one Redis never mix. Touchpoint ids are unique across users (the producers make them UUIDs); a touchpoint key
records its user, and a fact for the same id under another user is refused and counted."""

from __future__ import annotations

PREFIX = "rewardstream"


class CacheKeys:
    def __init__(self, namespace: str) -> None:
        self.base = f"{PREFIX}:{namespace}"

    def touchpoint(self, touchpoint_id: str) -> str:
        """Hash: the touchpoint's fields, ``attributed_minor`` (sum of the latest share of every conversion),
        ``p:<conversion>`` = ``"<revision> <amount>"``, ``final_minor`` once its window closed."""
        return f"{self.base}:tp:{touchpoint_id}"

    def user(self, user_id: str) -> str:
        """Sorted set: the user's open touchpoint ids, scored by event time."""
        return f"{self.base}:user:{user_id}"

    @property
    def offsets(self) -> str:
        """Hash: ``<topic>:<partition>`` → next offset to consume. Gone (flushed, restarted): rebuild."""
        return f"{self.base}:offsets"
