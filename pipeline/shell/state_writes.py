"""A step's journey writes reaching a partition's local RocksDB: one WriteBatch with the changelog offset they
reached, without the write-ahead log. Both runtimes' stores write this way (the Faust runtime into Faust's
table databases, the Kafka runtime into its own); only the key of the offset record differs.

The WAL is skipped because the changelog is this state's log: a batch and its offset are one WriteBatch, so
whatever a crash keeps of them is still a prefix of the changelog with its own offset. A write the store refuses
(a full disk, a failing filesystem) is :class:`~pipeline.errors.StateNotWritten`, naming the store.

May import: ``pipeline.errors``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rocksdict import WriteBatch, WriteOptions

from pipeline.errors import StateNotWritten


def unlogged() -> WriteOptions:
    """Write options without the write-ahead log."""
    options = WriteOptions()
    options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; the stub says a method
    return options


def apply_writes(db: Any, writes: Iterable[tuple[bytes, bytes | None]], offset_key: bytes, changelog_offset: int,
                 options: WriteOptions, store: str) -> None:
    """``writes`` (None: delete) and ``changelog_offset`` under ``offset_key``, atomically; ``store`` names the
    store in the error when it refuses them."""
    batch = WriteBatch(raw_mode=True)
    for key, value in writes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(offset_key, str(changelog_offset).encode())
    try:
        db.write(batch, options)
    except Exception as exc:  # rocksdict raises a bare Exception ("IO error: No space left on device: …")
        raise StateNotWritten(store, exc) from exc


BACKGROUND_ERRORS = "rocksdb.background-errors"  # RocksDB's count of failed flushes and compactions


def check_written(db: Any, seen: int, store: str) -> int:
    """:class:`~pipeline.errors.StateNotWritten` if RocksDB failed in the background since it had failed ``seen``
    times; returns the count now.

    The write that fills a memtable succeeds; the flush that follows fails on a full disk, and RocksDB tells only
    the next write, which may never come (the input has ended, the partition is quiet). Asked once a tick, the
    store stops the worker all the same. A flush gives back the error that stands; one RocksDB has recovered from
    (the flush succeeds) is let go."""
    count = int(db.property_int_value(BACKGROUND_ERRORS) or 0)
    if count > seen:
        try:
            db.flush(True)
        except Exception as exc:  # rocksdb's status, as for a write
            raise StateNotWritten(store, exc) from exc
    return count
