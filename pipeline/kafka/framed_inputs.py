"""A partition engine fed records in the topics' wire format: the edge adapter of the runtimes' input side.

The engines (Python and native) read Avro single-object encoding only. With another wire format
(``pipeline.events.wire``) each input record is reframed before the engine sees it; a record that cannot be
(wrong magic byte, unknown schema id) is refused with the reason, like any record the engine refuses, so it goes
to the dead letters. Refusals carry the record as Kafka delivered it, so a dead letter keeps the original bytes
and can be replayed to the input topic as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from pipeline.engine import EngineStats
from pipeline.engine.partition import BatchOutput, InputRecord, Loader, PartitionEngine
from pipeline.engine.partition.records import Refusal
from pipeline.errors import InvalidEvent
from pipeline.events.wire import WireFormat


class FramedInputs:
    """``PartitionEngine`` over another engine, reframing each input record with ``wire.inbound``."""

    def __init__(self, engine: PartitionEngine, wire: WireFormat) -> None:
        self.engine = engine
        self.wire = wire

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    def restore(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        return self.engine.restore(items)

    def event_times(self, records: Sequence[InputRecord]) -> list[int | None]:
        inner: list[InputRecord] = []
        for record in records:
            try:
                value = None if record.value is None else self.wire.inbound(record.value)
            except InvalidEvent:
                value = None  # refused by process: its time does not matter
            inner.append(record._replace(value=value))
        return self.engine.event_times(inner)

    def process(self, records: Sequence[InputRecord], load: Loader, idle: Collection[str] = (),
                floor_ms: int | None = None) -> BatchOutput:
        inner: list[InputRecord] = []
        refused: list[Refusal] = []
        delivered: dict[tuple[str, int], InputRecord] = {}
        for record in records:
            if record.value is None:  # the engine refuses tombstones itself
                inner.append(record)
                continue
            try:
                value = self.wire.inbound(record.value)
            except InvalidEvent as exc:
                refused.append(Refusal(record, exc))
                continue
            delivered[(record.source, record.offset)] = record
            inner.append(record._replace(value=value))
        out = self.engine.process(inner, load, idle, floor_ms)
        out.refused = [Refusal(delivered.get((r.record.source, r.record.offset), r.record), r.error)
                       for r in out.refused] + refused
        return out

    def advance(self, load: Loader, idle: Collection[str] = (), floor_ms: int | None = None) -> BatchOutput:
        return self.engine.advance(load, idle, floor_ms)

    def newest_ms(self) -> int | None:
        return self.engine.newest_ms()

    def lag_ms(self) -> int | None:
        return self.engine.lag_ms()


def framed(engine: PartitionEngine, wire: WireFormat) -> PartitionEngine:
    """``engine`` itself for single-object inputs (nothing to reframe), else wrapped in :class:`FramedInputs`."""
    return engine if type(wire) is WireFormat else FramedInputs(engine, wire)
