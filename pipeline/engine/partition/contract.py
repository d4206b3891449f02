"""What a runtime asks of a partition's processing, whichever engine does it (Python or native)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from pipeline.engine.engine import EngineStats
from pipeline.engine.partition.records import BatchOutput, InputRecord, Loader


class PartitionEngine(Protocol):
    @property
    def stats(self) -> EngineStats: ...

    def restore(self, items: Iterable[tuple[bytes, bytes]]) -> int: ...

    def event_times(self, records: Sequence[InputRecord]) -> list[int | None]:
        """Each record's event time, None where it cannot be read (a record the step will refuse)."""

    def process(self, records: Sequence[InputRecord], load: Loader, idle: Collection[str] = (),
                floor_ms: int | None = None) -> BatchOutput: ...

    def advance(self, load: Loader, idle: Collection[str] = (), floor_ms: int | None = None) -> BatchOutput: ...

    def newest_ms(self) -> int | None: ...

    def lag_ms(self) -> int | None: ...
