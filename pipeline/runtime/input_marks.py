"""Where a partition's state stands in its inputs: a mark the Kafka runtime writes into the journey changelog.

Every transaction that moves a partition's committed input offsets also writes, into that partition's changelog,
a record with those offsets. The mark and the offsets become visible together, so a store restored from the
changelog holds the offsets of the inputs its state has taken. At take-up the two are compared: a store whose mark
is behind the group's committed offsets lacks state that was committed (the restore stopped short of the
changelog's end, whatever the cause), and processing on from the committed offsets would lose those inputs'
effect for good. Kafka Streams checks its state against its offsets for the same reason (a corrupted task is
wiped and restored again).

The mark is a reserved key, so both engines, the Faust runtime and ``backfill --from-kafka`` pass over it. A
changelog written by the Faust runtime has none: nothing to compare until the Kafka runtime's first commit.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from pipeline.engine.partition import RESERVED_PREFIX, SOURCES


def input_mark_key(partition: int) -> bytes:
    return RESERVED_PREFIX + f"inputs:{partition}".encode()


def input_mark(offsets: Mapping[str, int]) -> bytes:
    """The mark's value: each source's next offset to read."""
    return orjson.dumps({s: offsets[s] for s in SOURCES})


def sources_behind(mark: bytes | None, committed: Mapping[str, int]) -> list[str]:
    """The sources whose committed offset is past what the store's mark says its state has taken (none without a
    mark)."""
    if mark is None:
        return []
    taken = orjson.loads(mark)
    return [s for s in SOURCES if s in taken and int(taken[s]) < committed[s]]
