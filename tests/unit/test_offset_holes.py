"""Holes in a partition's delivered offsets: found, and filled before the record that followed them."""

from __future__ import annotations

from typing import ClassVar

from pipeline.engine import EngineConfig
from pipeline.engine.partition import CONVERSIONS, TOUCHPOINTS, BatchOutput, InputRecord
from pipeline.settings import Settings
from pipeline.shell.idleness import Idleness
from pipeline.stream.local_state import JourneyTable
from pipeline.stream.offset_holes import Hole, OffsetHoles
from pipeline.stream.redelivery import Redelivery
from pipeline.stream.worker import StreamWorker

TP = ("touchpoints", 3)


def test_consecutive_offsets_leave_no_hole() -> None:
    holes = OffsetHoles()
    assert [holes.delivered(TP, o) for o in (7, 8, 9)] == [None, None, None]
    assert holes.next[TP] == 10


def test_a_jump_is_a_hole_from_the_expected_offset_to_the_delivered_one() -> None:
    holes = OffsetHoles()
    holes.delivered(TP, 7)
    assert holes.delivered(TP, 12) == Hole("touchpoints", 3, 8, 12)
    assert holes.delivered(TP, 13) is None


def test_repeats_after_a_seek_back_are_no_hole_and_do_not_move_the_expectation_back() -> None:
    holes = OffsetHoles()
    for o in range(5, 10):
        holes.delivered(TP, o)
    assert holes.delivered(TP, 6) is None  # redelivered (Faust sought back to the committed offset)
    assert holes.delivered(TP, 7) is None
    assert holes.next[TP] == 10
    assert holes.delivered(TP, 10) is None


def test_partitions_are_tracked_apart_and_forgotten_on_handover() -> None:
    holes = OffsetHoles()
    holes.delivered(TP, 7)
    assert holes.delivered(("conversions", 3), 100) is None
    holes.forget(TP)
    assert holes.delivered(TP, 50) is None  # a new owner starts wherever the committed offset is


def record(source: str, offset: int) -> InputRecord:
    return InputRecord(source, offset, b"u", f"{source}@{offset}".encode(), None)


class FakeKafka:
    """The hole reader: a committed offset per partition, and a log in which offset 2 is a transaction marker."""

    def __init__(self, settings: Settings, committed: dict[tuple[str, int], int]) -> None:
        self.settings = settings
        self.committed_at = committed
        self.asked: list[Hole] = []

    async def committed(self, topic: str, partition: int) -> int | None:
        return self.committed_at.get((topic, partition))

    async def read(self, hole: Hole) -> list[InputRecord]:
        self.asked.append(hole)
        source = TOUCHPOINTS if hole.topic == self.settings.topic_touchpoints else CONVERSIONS
        return [record(source, o) for o in range(hole.start, hole.end) if o != 2]


def worker_with(kafka: FakeKafka) -> StreamWorker:
    return StreamWorker(kafka.settings, EngineConfig(), None, table=JourneyTable(None),
                        output=None,  # type: ignore[arg-type]
                        idleness=Idleness(5, 0), redelivery=Redelivery(), on_failure=print, hole_reader=kafka)


def offsets(records: list[InputRecord]) -> list[tuple[str, int]]:
    return [(r.source, r.offset) for r in records]


async def test_the_worker_reads_a_hole_and_puts_its_records_before_the_record_after_it() -> None:
    settings = Settings()
    kafka = FakeKafka(settings, {})
    worker = worker_with(kafka)
    first = await worker._fill_holes(3, [record(TOUCHPOINTS, 0), record(CONVERSIONS, 0)])
    assert offsets(first) == [(TOUCHPOINTS, 0), (CONVERSIONS, 0)] and not kafka.asked
    batch = [record(CONVERSIONS, 1), record(TOUCHPOINTS, 4), record(TOUCHPOINTS, 5), record(CONVERSIONS, 2)]
    filled = await worker._fill_holes(3, batch)
    assert kafka.asked == [Hole(settings.topic_touchpoints, 3, 1, 4)]
    assert offsets(filled) == [(CONVERSIONS, 1), (TOUCHPOINTS, 1), (TOUCHPOINTS, 3), (TOUCHPOINTS, 4),
                               (TOUCHPOINTS, 5), (CONVERSIONS, 2)]
    assert worker.counters.hole_records == 2


async def test_a_partition_taken_up_starts_at_its_committed_offset() -> None:
    settings = Settings()
    kafka = FakeKafka(settings, {(settings.topic_touchpoints, 5): 1, (settings.topic_conversions, 5): 7})
    worker = worker_with(kafka)
    filled = await worker._fill_holes(5, [record(TOUCHPOINTS, 4), record(CONVERSIONS, 7), record(CONVERSIONS, 8)])
    assert kafka.asked == [Hole(settings.topic_touchpoints, 5, 1, 4, first=True)]
    assert offsets(filled) == [(TOUCHPOINTS, 1), (TOUCHPOINTS, 3), (TOUCHPOINTS, 4), (CONVERSIONS, 7),
                               (CONVERSIONS, 8)]
    # handed over and taken up again: asked again where to start
    await worker.retire([5])
    kafka.committed_at[(settings.topic_touchpoints, 5)] = 10
    assert offsets(await worker._fill_holes(5, [record(TOUCHPOINTS, 10)])) == [(TOUCHPOINTS, 10)]


def test_a_repeat_is_a_record_before_the_expected_offset() -> None:
    holes = OffsetHoles()
    assert not holes.repeat(TP, 3)  # nothing known about the partition yet
    for o in range(5, 10):
        holes.delivered(TP, o)
    assert holes.repeat(TP, 5) and holes.repeat(TP, 9) and not holes.repeat(TP, 10)
    holes.starts_at(("touchpoints", 4), 20)
    assert holes.repeat(("touchpoints", 4), 19) and not holes.repeat(("touchpoints", 4), 20)


async def test_records_delivered_again_after_a_hole_was_read_are_skipped_not_processed_twice() -> None:
    settings = Settings()
    kafka = FakeKafka(settings, {(settings.topic_touchpoints, 6): 3})
    worker = worker_with(kafka)
    first = await worker._fill_holes(6, [record(TOUCHPOINTS, 1), record(TOUCHPOINTS, 3), record(TOUCHPOINTS, 6)])
    assert offsets(first) == [(TOUCHPOINTS, 3), (TOUCHPOINTS, 4), (TOUCHPOINTS, 5), (TOUCHPOINTS, 6)]
    # Faust seeks back and delivers the hole again, then goes on
    again = await worker._fill_holes(6, [record(TOUCHPOINTS, 4), record(TOUCHPOINTS, 5), record(TOUCHPOINTS, 6),
                                         record(TOUCHPOINTS, 7)])
    assert offsets(again) == [(TOUCHPOINTS, 7)]
    assert worker.counters.repeats_skipped == 4  # offset 1 (before the committed 3) and 4, 5, 6
    assert worker.counters.hole_records == 2


def test_a_tail_hole_runs_from_the_expected_offset_to_the_brokers_end_and_moves_the_expectation() -> None:
    holes = OffsetHoles()
    assert holes.tail(TP, 9) is None  # nothing known about the partition
    holes.delivered(TP, 4)
    assert holes.tail(TP, 5) is None  # caught up
    assert holes.tail(TP, 9) == Hole("touchpoints", 3, 5, 9)
    assert holes.next[TP] == 9 and holes.repeat(TP, 8)  # Faust's late delivery of them is a repeat
    assert holes.tail(TP, 9) is None


def test_an_input_is_silent_behind_only_when_the_broker_answered_and_nothing_came_for_long_enough() -> None:
    clock = [100.0]
    idle = Idleness(30, 0, monotonic=lambda: clock[0])
    assert idle.silent_behind(TP, 10) is None  # the broker never answered
    idle.arrived(TP, 4)
    idle.broker_says({TP: 9}, {TP: 5})
    assert idle.silent_behind(TP, 10) is None  # a record just came
    clock[0] += 11
    assert idle.silent_behind(TP, 10) is None  # the broker's word is stale
    idle.broker_says({TP: 9}, {TP: 5})
    assert idle.silent_behind(TP, 10) is None  # answering again only now: its silence starts again
    answer_each_second(idle, {TP: 9}, clock, 9)
    assert idle.silent_behind(TP, 10) is None
    answer_each_second(idle, {TP: 9}, clock, 1)
    assert idle.silent_behind(TP, 10) == 9


def answer_each_second(idle: Idleness, ends: dict[tuple[str, int], int], clock: list[float], seconds: int) -> None:
    """The broker's answers to the worker's tick, once a second."""
    for _ in range(seconds):
        clock[0] += 1
        idle.broker_says(ends, {})


async def test_the_worker_reads_the_records_faust_never_delivered_at_a_partitions_end() -> None:
    settings = Settings()
    kafka = FakeKafka(settings, {})
    clock = [100.0]
    worker = StreamWorker(settings, EngineConfig(), None, table=None, output=None,  # type: ignore[arg-type]
                          idleness=Idleness(30, 0, monotonic=lambda: clock[0]), redelivery=Redelivery(),
                          on_failure=print, hole_reader=kafka)
    tps = (settings.topic_touchpoints, 3)
    for r in await worker._fill_holes(3, [record(TOUCHPOINTS, 0), record(TOUCHPOINTS, 1)]):
        worker.idleness.arrived(tps, r.offset)
    worker.idleness.broker_says({tps: 5}, {})
    answer_each_second(worker.idleness, {tps: 5}, clock, 9)
    assert await worker._fill_tail_holes([3]) == [] and not kafka.asked  # not silent long enough yet
    answer_each_second(worker.idleness, {tps: 5}, clock, 1)
    worker.processor = lambda partition: Recorder()  # type: ignore[assignment,method-assign]
    worker._loader = lambda partition: None  # type: ignore[assignment,method-assign,return-value]
    outputs = await worker._fill_tail_holes([3])
    assert kafka.asked == [Hole(settings.topic_touchpoints, 3, 2, 5)]
    assert [p for p, _ in outputs] == [3] and Recorder.seen == [(TOUCHPOINTS, 3), (TOUCHPOINTS, 4)]  # 2: a marker
    assert worker.counters.hole_records == 2 and worker.counters.events_in == 2
    # Faust delivers them late: repeats, not processed twice
    assert offsets(await worker._fill_holes(3, [record(TOUCHPOINTS, 3), record(TOUCHPOINTS, 4),
                                                record(TOUCHPOINTS, 5)])) == [(TOUCHPOINTS, 5)]
    assert await worker._fill_tail_holes([3]) == []


class Recorder:
    """A partition engine that only records what it was given."""

    seen: ClassVar[list[tuple[str, int]]] = []

    def process(self, records: list[InputRecord], load: object, idle: object) -> BatchOutput:
        Recorder.seen += offsets(records)
        return BatchOutput()
