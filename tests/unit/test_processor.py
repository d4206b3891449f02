"""The per-partition processor without Faust: watermark over two inputs, outbox writes, restore."""

from __future__ import annotations

from pipeline.engine import DAY_MS, EngineConfig
from pipeline.events.types import RewardKind
from pipeline.stream import journey_codec
from pipeline.stream.processor import CONVERSIONS, TOUCHPOINTS, PartitionProcessor
from tests.unit.helpers import conv, tp


class Dict(dict[str, bytes]):
    def apply(self, writes: list[tuple[str, bytes | None]]) -> None:
        for key, value in writes:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value


def make(kv: Dict, now: list[float]) -> PartitionProcessor:
    config = EngineConfig(max_future_skew_ms=60 * DAY_MS)
    return PartitionProcessor(0, kv, config, idle_timeout_s=5, clock=lambda: now[0])


def test_watermark_waits_for_both_inputs_and_ignores_only_idle_caught_up_ones() -> None:
    kv, now = Dict(), [0.0]
    proc = make(kv, now)
    kv.apply(proc.process(TOUCHPOINTS, tp("t1", 0))[1])
    kv.apply(proc.process(TOUCHPOINTS, tp("t2", 24 * 30))[1])
    assert proc.watermark() is None  # conversions have said nothing yet: nothing can be final
    now[0] = 10.0  # conversions silent for longer than the idle timeout (and caught up by default)
    _, writes = proc.process(TOUCHPOINTS, tp("t3", 24 * 31))
    kv.apply(writes)
    assert proc.watermark() is not None
    finals = [r for r in journey_codec.decode(kv["u1"])[1] if r.kind is RewardKind.FINAL]
    assert {r.touchpoint_id for r in finals} == {"t1"}


def test_writes_carry_the_outbox_and_the_frontier_precedes_expiry() -> None:
    kv, now = Dict(), [0.0]
    proc = make(kv, now)
    kv.apply(proc.process(TOUCHPOINTS, tp("a", 0, user="x"))[1])
    rewards, writes = proc.process(CONVERSIONS, conv("c", 1, "10", user="x"))
    kv.apply(writes)
    assert [r.amount_minor for r in rewards] == [1000]
    assert journey_codec.decode(kv["x"])[1] == rewards  # the outbox is the step's rewards
    kv.apply(proc.process(TOUCHPOINTS, tp("b", 24 * 8, user="y"))[1])
    rewards, writes = proc.process(CONVERSIONS, conv("d", 24 * 8, "1", user="y"))
    assert any(r.kind is RewardKind.FINAL and r.touchpoint_id == "a" for r in rewards)
    assert writes[0][0] == proc.meta_key  # frontier first
    journey, outbox = journey_codec.decode(next(v for k, v in writes if k == "x" and v is not None))
    assert journey is not None and not journey.touches and journey.splits  # conversion kept for refunds
    assert [r.kind for r in outbox] == [RewardKind.FINAL]


def test_restore_rebuilds_schedule_and_frontier() -> None:
    kv, now = Dict(), [0.0]
    proc = make(kv, now)
    kv.apply(proc.process(TOUCHPOINTS, tp("a", 0, user="x"))[1])
    kv.apply(proc.process(CONVERSIONS, conv("c", 1, "10", user="x"))[1])
    again = make(kv, now)
    assert again.restore(sorted(kv.items())) == 1
    assert again.engine.max_seen_ms == proc.engine.max_seen_ms
    rewards, _ = again.process(TOUCHPOINTS, tp("z", 24 * 8 + 2, user="w"))
    rewards += again.process(CONVERSIONS, conv("zc", 24 * 8 + 2, "1", user="w"))[0]
    assert [(r.touchpoint_id, r.amount_minor) for r in rewards if r.kind is RewardKind.FINAL] == [("a", 1000)]


def test_journey_codec_round_trips_state_and_outbox() -> None:
    from pipeline.engine import AttributionEngine

    e = AttributionEngine(EngineConfig())
    e.process(tp("a", 0))
    e.process(tp("b", 1))
    out = e.process(conv("c", 2, "10"))
    out += e.process(conv("r", 3, "4", refund_of="c", event="refund"))
    journey = e.store["u1"]
    back, outbox = journey_codec.decode(journey_codec.encode(journey, out))
    assert back == journey and outbox == out
    assert journey_codec.decode(journey_codec.encode(None, out)) == (None, out)
