"""The journeys table's local RocksDB, read and written directly, one partition database at a time.

Faust keeps one RocksDB (rocksdict) per table partition and restores it from the changelog on assignment; this
module uses those databases without Faust's per-key write path (one changelog send and one put per write),
which costs far more per write than a batch does (docs/benchmarks.md). A batch's writes go to the changelog
first (see ``changelog``); only once Kafka has acknowledged them are they applied here, in one WriteBatch
together with the changelog offset they reached.
The local state is therefore always a prefix of the changelog, and Faust's recovery, which replays the
changelog from that stored offset, brings it up to date after any crash.

These writes skip RocksDB's write-ahead log, as the Kafka runtime's do (``pipeline.shell.state_writes`` says
why); recovery replays what a crash took from the memtables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.engine.partition import Loader, Write
from pipeline.shell.state_writes import apply_writes, check_written, unlogged
from pipeline.stream.faust_runtime import partition_db

FAUST_OFFSET_KEY = b"__faust\x00offset__"  # where Faust's RocksDB store keeps a partition's changelog offset


class JourneyTable:
    """The partition databases of one Faust ``Table`` (rocksdb:// store)."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._write_options = unlogged()
        # per partition, its database's count of background errors (forgotten when the partition goes: taken up
        # again, it may get a new database, counting from 0). The database itself is not kept: Faust closes a
        # partition's database by dropping it, and a reference held here would keep it open.
        self._background_errors: dict[int, int] = {}

    def _db(self, partition: int) -> Any:
        return partition_db(self._table, partition)

    def loader(self, partition: int) -> Loader:
        """``keys → values`` for the processor: one multi-get per call."""
        db = self._db(partition)

        def load(keys: list[bytes]) -> list[bytes | None]:
            return list(db.get(keys))

        return load

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self._db(partition).get(key)
        return value if value is None else bytes(value)

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Stored journeys and metadata of a partition (Faust's own keys left out)."""
        for key, value in self._db(partition).items():
            if isinstance(key, bytes) and not key.startswith(b"__faust"):
                yield key, bytes(value)

    def apply(self, partition: int, writes: list[Write], changelog_offset: int) -> None:
        """Writes Kafka has acknowledged, with the changelog offset they reached, atomically."""
        db = self._db(partition)
        apply_writes(db, writes, FAUST_OFFSET_KEY, changelog_offset, self._write_options, _name(db, partition))

    def check_written(self, partition: int) -> None:
        """``StateNotWritten`` if the partition's database has failed to write in the background
        (``state_writes.check_written``)."""
        db = self._db(partition)
        self._background_errors[partition] = check_written(db, self._background_errors.get(partition, 0),
                                                           _name(db, partition))

    def forget(self, partition: int) -> None:
        """The partition has gone to another worker."""
        self._background_errors.pop(partition, None)


def _name(db: Any, partition: int) -> str:
    """How errors name a partition's database."""
    return f"{db.path()} (partition {partition})"
