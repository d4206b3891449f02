"""Which worker owns a partition, from the consumer group itself: for ``/journeys/`` asked of the wrong worker.

Each worker's consumer names its HTTP address in its ``client.id``; the group's description (members, their
client ids and assignments, from the group coordinator) then maps every touchpoints partition to the address of
the worker that owns it. Asked at most every few seconds, and only when a request needs it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

CLIENT_ID_PREFIX = "rewardstream-worker web="
REFRESH_SECONDS = 2.0


def client_id(web_host: str, web_port: int) -> str:
    return f"{CLIENT_ID_PREFIX}http://{web_host}:{web_port}"


def address_of(member_client_id: str) -> str | None:
    if not member_client_id.startswith(CLIENT_ID_PREFIX):
        return None
    return member_client_id[len(CLIENT_ID_PREFIX):]


class PartitionOwners:
    def __init__(self, admin: Any, group: str, topic: str, timeout: float = 5.0) -> None:
        self._admin = admin
        self._group = group
        self._topic = topic
        self._timeout = timeout
        self._owners: dict[int, str] = {}
        self._asked = -1e18
        self._lock = threading.Lock()

    def address(self, partition: int) -> str | None:
        """The owning worker's HTTP address (``http://host:port``), or None when the group does not say."""
        with self._lock:
            if time.monotonic() - self._asked > REFRESH_SECONDS or partition not in self._owners:
                self._refresh()
            return self._owners.get(partition)

    def _refresh(self) -> None:
        self._asked = time.monotonic()
        try:
            description = self._admin.describe_consumer_groups(
                [self._group], request_timeout=self._timeout)[self._group].result(self._timeout)
        except Exception:  # the coordinator out of reach: no answer now, asked again next time
            return
        owners: dict[int, str] = {}
        for member in description.members:
            address = address_of(member.client_id or "")
            if address is None or member.assignment is None:
                continue
            for tp in member.assignment.topic_partitions:
                if tp.topic == self._topic:
                    owners[tp.partition] = address
        self._owners = owners
