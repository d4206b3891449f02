"""The per-partition processor without Faust or Kafka: batches of raw records in, table writes out."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.engine import EngineConfig, Journey
from pipeline.engine.partition import CONVERSIONS, RESERVED_PREFIX, TOUCHPOINTS, BatchOutput, InputRecord, journey_codec
from pipeline.engine.partition.processor import PartitionProcessor
from pipeline.events.avro import (
    AvroCodec,
    conversion_to_record,
    reward_from_record,
    reward_to_record,
    touchpoint_to_record,
)
from pipeline.events.parse import parse_event
from pipeline.events.types import AttributedReward, Event, RewardKind, Touchpoint
from pipeline.synthetic import LogSpec, engine_config_table, generate
from pipeline.units import DAY_MS
from tests.unit.helpers import T0, conv, tp

TP_CODEC, CV_CODEC, REWARDS = AvroCodec("touchpoint"), AvroCodec("conversion"), AvroCodec("attributed_reward")


class Table(dict[bytes, bytes]):
    """The journeys table as a dict: what the worker keeps in RocksDB."""

    def load(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def apply(self, out: BatchOutput) -> list[AttributedReward]:
        rewards = []
        for key, value in out.writes:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value
                if not key.startswith(RESERVED_PREFIX):  # the partition's frontier, not a journey
                    rewards += [reward_from_record(REWARDS.decode(r)) for r in journey_codec.outbox(value)]
        return rewards


def record(event: Event, offset: int = 0, key: bytes | None = None) -> InputRecord:
    if isinstance(event, Touchpoint):
        source, value = TOUCHPOINTS, TP_CODEC.encode(touchpoint_to_record(event))
    else:
        source, value = CONVERSIONS, CV_CODEC.encode(conversion_to_record(event))
    return InputRecord(source, offset, event.user_id.encode() if key is None else key, value, None)


def make(config: EngineConfig | None = None) -> PartitionProcessor:
    return PartitionProcessor(0, config or EngineConfig(max_future_skew_ms=60 * DAY_MS))


def test_watermark_waits_for_both_inputs_unless_one_is_idle() -> None:
    table, proc = Table(), make()
    table.apply(proc.process([record(tp("t1", 0)), record(tp("t2", 24 * 30))], table.load))
    assert proc.engine.watermark is None  # conversions have said nothing yet: nothing can be final
    out = proc.process([record(tp("t3", 24 * 31))], table.load, idle=[CONVERSIONS])
    finals = [r for r in table.apply(out) if r.kind is RewardKind.FINAL]
    assert {r.touchpoint_id for r in finals} == {"t1"}


def test_writes_carry_the_outbox_and_the_frontier_precedes_expiry() -> None:
    table, proc = Table(), make()
    out = proc.process([record(tp("a", 0, user="x")), record(conv("c", 1, "10", user="x"))], table.load)
    rewards = table.apply(out)
    assert [(r.touchpoint_id, r.amount_minor) for r in rewards] == [("a", 1000)]
    assert [k for k, _ in out.writes] == [proc.meta_key, b"x"]  # one write per changed journey per batch
    out = proc.process([record(tp("b", 24 * 8, user="y")), record(conv("d", 24 * 8, "1", user="y"))], table.load)
    assert out.writes[0][0] == proc.meta_key  # frontier first
    x = next(v for k, v in out.writes if k == b"x" and v is not None)
    journey = journey_codec.decode_journey(x)
    assert journey is not None and not journey.touches and journey.splits  # conversion kept for refunds
    finals = [reward_from_record(REWARDS.decode(r)) for r in journey_codec.outbox(x)]
    assert [(r.kind, r.touchpoint_id, r.amount_minor) for r in finals] == [(RewardKind.FINAL, "a", 1000)]


def test_bad_records_are_refused_by_field_and_the_rest_of_the_batch_goes_on() -> None:
    table, proc = Table(), make()
    good = record(tp("a", 0, user="x"))
    bad = [
        InputRecord(TOUCHPOINTS, 1, b"x", b"\x00\x01garbage", None),
        InputRecord(TOUCHPOINTS, 2, b"x", None, None),
        record(tp("k", 0, user="x"), 3, key=b"someone-else"),
        InputRecord(CONVERSIONS, 4, b"x", TP_CODEC.encode(touchpoint_to_record(tp("w", 0, user="x"))), None),
        InputRecord(TOUCHPOINTS, 5, b"x", TP_CODEC.encode({**touchpoint_to_record(tp("s", 0, user="x")),
                                                           "state": "{not json"}), None),
        InputRecord(TOUCHPOINTS, 6, b"x", TP_CODEC.encode({**touchpoint_to_record(tp("n", 0, user="x")),
                                                           "immediate_reward": float("nan")}), None),
        InputRecord(TOUCHPOINTS, 7, b"", TP_CODEC.encode({**touchpoint_to_record(tp("e", 0, user="x")),
                                                          "user_id": ""}), None),
    ]
    out = proc.process([bad[0], good, *bad[1:]], table.load)
    assert [r.record.offset for r in out.refused] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.error.field for r in out.refused] == ["<bytes>", "<bytes>", "key", "<schema>", "state",
                                                    "immediate_reward", "user_id"]
    table.apply(out)
    journey = journey_codec.decode_journey(table[b"x"])
    assert journey is not None and [t.touchpoint_id for t in journey.touches] == ["a"]


def test_restore_rebuilds_schedule_and_frontier() -> None:
    table, proc = Table(), make()
    table.apply(proc.process([record(tp("a", 0, user="x")), record(conv("c", 1, "10", user="x"))], table.load))
    again = make()
    assert again.restore(sorted(table.items())) == 1
    assert again.engine.clock.state() == proc.engine.clock.state()
    out = again.process([record(tp("z", 24 * 8 + 2, user="w")), record(conv("zc", 24 * 8 + 2, "1", user="w"))],
                        table.load)
    assert [(r.touchpoint_id, r.amount_minor) for r in table.apply(out) if r.kind is RewardKind.FINAL] == [("a", 1000)]


def test_an_all_idle_partition_is_moved_by_the_floor_it_is_given() -> None:
    table, proc = Table(), make()
    table.apply(proc.process([record(tp("a", 0)), record(conv("c", 1, "10"))], table.load))
    assert not table.apply(proc.advance(table.load, idle=[TOUCHPOINTS, CONVERSIONS]))
    out = proc.advance(table.load, idle=[TOUCHPOINTS, CONVERSIONS], floor_ms=T0 + 8 * DAY_MS)
    assert [(r.kind, r.amount_minor) for r in table.apply(out)] == [(RewardKind.FINAL, 1000)]
    assert out.writes[0][0] == proc.meta_key
    late = proc.process([record(tp("old", 24))], table.load)  # now older than the watermark
    assert [r.error.field for r in late.refused] == ["timestamp"]


def test_journey_codec_round_trips_state_and_outbox_and_reads_format_1() -> None:
    from pipeline.engine import AttributionEngine

    e = AttributionEngine(EngineConfig())
    out = e.process(tp("a", 0)) + e.process(tp("b", 1)) + e.process(conv("c", 2, "10"))
    out += e.process(conv("r", 3, "4", refund_of="c", event="refund"))
    journey = e.store["u1"]
    records = [REWARDS.encode(reward_to_record(r)) for r in out]
    value = journey_codec.encode(journey, records)
    assert value[0] == journey_codec.FORMAT_VERSION
    assert journey_codec.decode_journey(value) == journey and journey_codec.outbox(value) == records
    assert journey_codec.decode_journey(journey_codec.encode(None, records)) is None
    legacy = orjson.dumps([1, [list(t) for t in journey.touches], [0, 1], journey.earned, [], [list(r) for r in out]])
    assert journey_codec.decode_journey(legacy) == Journey(journey.touches, journey.earned, [])
    assert journey_codec.outbox(legacy) == records


def _facts(rewards: list[AttributedReward]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    finals = {}
    for r in rewards:
        if r.kind is RewardKind.FINAL:
            finals[r.touchpoint_id] = r.amount_minor
        elif r.kind is not RewardKind.UNATTRIBUTED:
            key = (r.conversion_id or "", r.touchpoint_id)
            if key not in latest or r.revision > latest[key][0]:
                latest[key] = (r.revision, r.amount_minor)
    return {k: v for k, (_, v) in latest.items()}, finals


_LOG = [parse_event(orjson.loads(line)) for line in generate(LogSpec(users=150, seed=5, closing_partitions=1))]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
def test_batching_changes_no_reward(seed: int, most: int) -> None:
    """However the records are cut into batches, the facts are those of one record at a time."""
    config = EngineConfig.from_mapping({**engine_config_table(), "max_future_skew_hours": 24 * 60})

    def run(sizes: list[int]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        table, proc = Table(), make(config)
        records = [record(e, i) for i, e in enumerate(_LOG)]
        rewards: list[AttributedReward] = []
        at = 0
        for size in sizes:
            rewards += table.apply(proc.process(records[at:at + size], table.load))
            at += size
        while True:  # the timer finishes sweeps a batch left in slices
            step = table.apply(proc.advance(table.load))
            if not step:
                break
            rewards += step
        return _facts(rewards)

    rng = random.Random(seed)
    sizes, left = [], len(_LOG)
    while left:
        sizes.append(min(left, rng.randint(1, most)))
        left -= sizes[-1]
    assert run(sizes) == run([1] * len(_LOG))
