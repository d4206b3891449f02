"""A store that failed to write in the background stops the worker even when no write follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import StateNotWritten
from pipeline.runtime.store import PartitionStore
from pipeline.shell.state_writes import BACKGROUND_ERRORS, check_written


class FailedFlushDb:
    """A RocksDB whose memtable flush failed: the count goes up, and a flush gives back the error while it stands."""

    def __init__(self, errors: int, standing: str | None) -> None:
        self.errors, self.standing, self.flushes = errors, standing, 0

    def property_int_value(self, name: str) -> int:
        assert name == BACKGROUND_ERRORS
        return self.errors

    def path(self) -> str:
        return "/faust/journeys-0.db"

    def flush(self, wait: bool) -> None:
        self.flushes += 1
        if self.standing is not None:
            raise Exception(self.standing)  # rocksdict raises a bare Exception


def test_a_standing_background_error_is_state_not_written_naming_the_store_and_rocksdbs_reason() -> None:
    db = FailedFlushDb(1, "IO error: No space left on device: While appending to file: /s/0/000008.sst")
    with pytest.raises(StateNotWritten, match=r"/s/0 could not be written \(IO error: No space left on device"):
        check_written(db, 0, "/s/0")


def test_an_error_rocksdb_recovered_from_is_let_go_and_not_asked_again() -> None:
    db = FailedFlushDb(1, None)
    assert check_written(db, 0, "/s/0") == 1 and db.flushes == 1
    assert check_written(db, 1, "/s/0") == 1 and db.flushes == 1  # the same error: no second flush


def test_a_healthy_store_reports_no_background_errors(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path, 0, 1, 1)
    try:
        store.apply({b"u1": b"x"}, 0)
        store.check_written()
        assert store._background_errors == 0
    finally:
        store.close()


def test_a_faust_partition_taken_up_again_counts_its_new_databases_errors_from_zero() -> None:
    """The old database's recovered error must not hide the new one's first."""
    from pipeline.stream.local_state import JourneyTable

    table = JourneyTable(object())
    current = FailedFlushDb(1, None)
    table._db = lambda partition: current  # type: ignore[method-assign]
    table.check_written(0)  # recovered: let go
    table.forget(0)  # the partition went, and came back
    current = FailedFlushDb(1, "IO error: No space left on device")
    with pytest.raises(StateNotWritten, match=r"journeys-0.db \(partition 0\) could not be written"):
        table.check_written(0)
