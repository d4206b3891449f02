"""A partition's journeys in a local RocksDB (rocksdict), always a committed prefix of its changelog partition.

Writes reach the store only after the Kafka transaction that carried them to the changelog has committed, in one
WriteBatch together with the changelog offset they reached. A crash at any point therefore leaves the store at
or behind the changelog's committed records, and :func:`restore` brings it up to date from the offset it holds.
Between commits a step reads the writes of earlier, still open steps from an overlay (``loader``).

The store skips RocksDB's write-ahead log, as the Faust runtime's tables do (``pipeline.shell.state_writes`` says
why).

Values are kept without their outbox: in this runtime a journey's rewards go to the rewards topic in the same
transaction as the journey, so nothing needs to be found again at restore (values written by the Faust runtime,
which carry one, are stripped as they are restored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rocksdict import AccessType, BlockBasedOptions, Cache, Options, Rdict

from pipeline.engine.partition import RESERVED_PREFIX, Loader, journey_codec
from pipeline.shell.state_writes import apply_writes, check_written, unlogged

OFFSET_KEY = RESERVED_PREFIX + b"changelog-offset"  # the changelog offset the stored writes reach


class PartitionStore:
    """One partition's RocksDB under ``root/<partition>``."""

    def __init__(self, root: Path, partition: int, cache_mb: int, write_buffer_mb: int) -> None:
        self.partition = partition
        self.path = root / str(partition)
        self.path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(write_buffer_mb * 1024 * 1024)  # the setting rocksdb_write_buffer_mb
        options.increase_parallelism(1)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(cache_mb * 1024 * 1024))  # the setting rocksdb_cache_mb, as Faust's tables
        options.set_block_based_table_factory(table)
        self._db: Any = Rdict(str(self.path), options, access_type=AccessType.read_write())
        self._write_options = unlogged()
        self._background_errors = 0

    def offset(self) -> int:
        """The changelog offset the stored writes reach (-1: none)."""
        raw = self._db.get(OFFSET_KEY)
        return int(raw) if raw is not None else -1

    def loader(self, overlay: Mapping[bytes, bytes | None]) -> Loader:
        """``keys → values`` for a step: writes of open transactions first, then the store (one multi-get)."""
        db = self._db

        def load(keys: list[bytes]) -> list[bytes | None]:
            if not overlay:
                return list(db.get(keys))
            missing = [k for k in keys if k not in overlay]
            stored = dict(zip(missing, db.get(missing), strict=True)) if missing else {}
            return [overlay[k] if k in overlay else stored[k] for k in keys]

        return load

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return value if value is None else bytes(value)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Stored journeys and the partition's metadata (the offset record left out)."""
        for key, value in self._db.items():
            if key != OFFSET_KEY:
                yield bytes(key), bytes(value)

    def apply(self, writes: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        """Committed writes and the changelog offset they reached, atomically."""
        apply_writes(self._db, writes.items(), OFFSET_KEY, changelog_offset, self._write_options, str(self.path))

    def check_written(self) -> None:
        """``StateNotWritten`` if the store has failed to write in the background (``state_writes.check_written``)."""
        self._background_errors = check_written(self._db, self._background_errors, str(self.path))

    def close(self) -> None:
        self._db.close()

    def destroy(self) -> None:
        """Closed and deleted: the partition's next owner has the state (its changelog is the truth)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


def stored_value(key: bytes, value: bytes | None) -> bytes | None:
    """A journey write as this runtime stores it, locally and in the changelog: without its outbox; None (delete)
    where no journey is left. Reserved keys (the partition's clock, the Faust runtime's marks) are kept as they
    are."""
    if value is None or key.startswith(RESERVED_PREFIX):
        return value
    if not journey_codec.has_journey(value):
        return None
    return journey_codec.without_outbox(value)
