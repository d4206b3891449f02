"""Attribution core and backfill benchmark.

Prints: events/s through the pure engine and through the backfill command (JSON in, JSON out) for journeys
of 1, 5 and 20 touchpoints; the time of one conversion over a 10,000-touchpoint journey; and memory per
open touchpoint, next to a plain dict-of-Python-objects implementation measured in the same process.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import orjson

from pipeline.backfill import run_backfill
from pipeline.engine import HOUR_MS, AttributionEngine, EngineConfig
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Touchpoint

T0 = 1_767_225_600_000
CHANNELS = ("search", "display", "social", "email", "video")


def journey_log(users: int, touches: int) -> list[dict[str, object]]:
    """Each user: ``touches`` touchpoints an hour apart, then a purchase; users interleaved in time."""
    events: list[tuple[int, dict[str, object]]] = []
    for u in range(users):
        start = T0 + u * 60_000
        for k in range(touches):
            events.append((start + k * HOUR_MS, {
                "type": "touchpoint", "touchpoint_id": f"t{u}-{k}", "episode_id": f"e{u}", "user_id": f"u{u}",
                "campaign_id": "camp", "channel": CHANNELS[k % 5], "timestamp": start + k * HOUR_MS,
                "immediate_reward": 0.1, "state": [0.1, 0.2, 0.3, 0.4], "action": k % 5}))
        t = start + touches * HOUR_MS
        events.append((t, {"type": "conversion", "conversion_id": f"c{u}", "user_id": f"u{u}", "event": "purchase",
                           "value": "99.99", "currency": "USD", "timestamp": t}))
    events.sort(key=lambda x: x[0])
    return [e for _, e in events]


def bench_engine(events: list[dict[str, object]], model: str) -> float:
    parsed = [parse_event(e) for e in events]
    engine = AttributionEngine(EngineConfig(default_model=model))
    gc.collect()
    t = time.perf_counter()
    for ev in parsed:
        engine.process(ev)
    engine.flush()
    return len(parsed) / (time.perf_counter() - t)


def bench_backfill(events: list[dict[str, object]], model: str, tmp: Path) -> float:
    src = tmp / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    summary = run_backfill(src, tmp / "out.jsonl", EngineConfig(default_model=model), progress=False)
    assert summary.rejected == 0
    return summary.events_in / summary.seconds


def bench_long_journey(n: int, model: str, repeats: int = 7) -> float:
    times = []
    for r in range(repeats):
        engine = AttributionEngine(EngineConfig(default_model=model, max_journey_length=n + 1,
                                                allowed_lateness_ms=10**12, max_future_skew_ms=10**12))
        for k in range(n):
            engine.apply(Touchpoint(f"t{k}", "e", "u", "c", CHANNELS[k % 5], T0 + k * 1000, 0.0))
        conv = Conversion(f"c{r}", "u", "purchase", Decimal("1000.00"), "USD", T0 + n * 1000)
        gc.collect()
        t = time.perf_counter()
        out = engine.apply(conv)
        times.append(time.perf_counter() - t)
        assert len(out) == n and sum(x.amount_minor for x in out) == 100000
    return statistics.median(times)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def bench_memory(open_touches: int) -> tuple[float, float]:
    """Bytes per open touchpoint: the engine vs a plain dict of per-touchpoint dicts."""
    users = open_touches // 5
    gc.collect()
    before = _rss()
    engine = AttributionEngine(EngineConfig(allowed_lateness_ms=10**12))
    for u in range(users):
        for k in range(5):
            engine.apply(Touchpoint(f"tp-{u:07d}-{k}", f"ep-{u:07d}", f"user-{u:07d}", f"camp-{k}", CHANNELS[k],
                                    T0 + k * 1000, 0.0))
    gc.collect()
    ours = (_rss() - before) / (users * 5)
    del engine
    gc.collect()
    before = _rss()
    plain: dict[str, list[dict[str, object]]] = {}
    for u in range(users):
        plain[f"user-{u:07d}"] = [
            {"touchpoint_id": f"tp-{u:07d}-{k}", "episode_id": f"ep-{u:07d}", "user_id": f"user-{u:07d}",
             "campaign_id": f"camp-{k}", "channel": CHANNELS[k], "timestamp": T0 + k * 1000,
             "immediate_reward": 0.0, "earned": Decimal(0)} for k in range(5)]
    gc.collect()
    baseline = (_rss() - before) / (users * 5)
    del plain
    return ours, baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--model", default="linear")
    ap.add_argument("--open-touches", type=int, default=1_000_000)
    args = ap.parse_args()
    print(f"attribution core benchmark (model {args.model}); figures are this machine's, one run")
    print(f"{'journey':>10} {'events':>9} {'engine ev/s':>13} {'backfill ev/s':>15}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for touches in (1, 5, 20):
            users = max(1000, args.users * 5 // (touches + 1))
            events = journey_log(users, touches)
            eng = bench_engine(events, args.model)
            bf = bench_backfill(events, args.model, tmp)
            print(f"{touches:>7} tp {len(events):>9,} {eng:>13,.0f} {bf:>15,.0f}")
    for model in ("linear", "time_decay", "position_based"):
        secs = bench_long_journey(10_000, model)
        print(f"one conversion over a 10,000-touchpoint journey ({model}): {secs * 1000:.2f} ms")
    ours, baseline = bench_memory(args.open_touches)
    print(f"memory per open touchpoint ({args.open_touches:,} open): engine {ours:,.0f} B, "
          f"plain dict-of-dicts {baseline:,.0f} B ({baseline / ours:.1f}x)")
    print(json.dumps({"note": "targets: backfill 500,000 ev/s; long journey 1 ms"}))


if __name__ == "__main__":
    main()
