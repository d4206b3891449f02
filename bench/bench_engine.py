"""Attribution core and backfill benchmark: the Python engine and the native engine in one run.

Prints, for each engine: events/s through the engine alone (inputs decoded beforehand) and through the backfill
command's path (JSON Lines in, JSON Lines out, one process) for journeys of 1, 5 and 20 touchpoints; through the
engine alone over `rewardstream fit`'s synthetic log (journeys as the generator makes them); the time to read a
line of that log into an event (each engine's reader, and orjson alone as the peer's figure); the time of one
conversion over a 10,000-touchpoint journey; memory per open touchpoint with 1,000,000 open (RSS growth, each
engine in a fresh process), next to a plain dict-of-Python-objects; and a loop that only reads and writes the
same bytes as the ceiling of the backfill path.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from functools import partial
from pathlib import Path

# As `rewardstream backfill` runs it: the CLI sets this before numpy loads (OpenBLAS's idle worker threads spin
# beside the engine, 3-6 % of the backfill's CPU on 2 cores)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import orjson

from pipeline.backfill import run_backfill
from pipeline.backfill.lines import Chunk, read_chunks
from pipeline.cli.common import load_engine_config
from pipeline.engine import FILE_QUORUM, AttributionEngine, EngineConfig
from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Touchpoint
from pipeline.native import NativeBackfill, available, release_free_memory
from pipeline.synthetic import LogSpec, generate, write_engine_config
from pipeline.units import HOUR_MS

T0 = 1_767_225_600_000
CHANNELS = ("search", "display", "social", "email", "video")
NOW = T0 + 400 * 86_400_000
BACKFILL_SCALE = 5


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


def python_engine(events: list[dict[str, object]], model: str) -> float:
    parsed = [parse_event(e) for e in events]
    engine = AttributionEngine(EngineConfig(default_model=model), quorum=FILE_QUORUM)
    gc.collect()
    t = time.perf_counter()
    for ev in parsed:
        engine.process(ev, NOW)
    engine.flush()
    return len(parsed) / (time.perf_counter() - t)


def native_engine(events: list[dict[str, object]], model: str) -> tuple[float, float]:
    """(first pass, median of the passes after it), each pass a fresh engine over the same input. One pass of
    the short logs takes 20–60 ms, so a single timing is mostly the process's first use of that much heap
    (page faults, the allocator growing); the later passes are the engine's steady state."""
    return native_passes(b"".join(orjson.dumps(e) + b"\n" for e in events), EngineConfig(default_model=model))


def native_passes(data: bytes, config: EngineConfig) -> tuple[float, float]:
    rates: list[float] = []
    spent = 0.0
    while len(rates) < 4 or (spent < 1.0 and len(rates) < 30):
        backfill = NativeBackfill(config, None, NOW, FILE_QUORUM)
        n, _, seconds = backfill._backfill.bench_engine(data)
        rates.append(float(n) / seconds)
        spent += seconds
        del backfill
    return rates[0], statistics.median(rates[1:])


def synthetic_log(lines: list[str], config: EngineConfig, engine: str) -> float:
    """The engine alone over `rewardstream fit`'s synthetic log (bench_fit's): journeys of 1 to 20 touchpoints
    over 30 days, late events, duplicates, refunds. A journey's next deadline is scheduled when its previous
    touch expires, out of time order, so this log measures the expiry queue's heap, where the 1/5/20 logs above
    measure its in-order lanes. Refused events count as events (they are work too)."""
    if engine != "python":
        return native_passes("\n".join(lines).encode() + b"\n", config)[1]
    parsed = []
    for line in lines:
        with contextlib.suppress(InvalidEvent):  # a refusal, the native engine's too: counted, not applied
            parsed.append(parse_event(orjson.loads(line)))
    py = AttributionEngine(config, quorum=FILE_QUORUM)
    gc.collect()
    t = time.perf_counter()
    for ev in parsed:
        with contextlib.suppress(InvalidEvent):
            py.process(ev, NOW)
    py.flush()
    return len(lines) / (time.perf_counter() - t)


def reading(lines: list[str], config: EngineConfig, engine: str) -> float:
    """Nanoseconds a line to read an input event from JSON (no engine): the native reader's fast path, one
    thread, best of five; or the Python engine's, orjson then `parse_event`. orjson alone (JSON to dicts, no
    checks) is printed beside them as the peer library's figure."""
    if engine == "native":
        data = "\n".join(lines).encode() + b"\n"
        reader = NativeBackfill(config, None, NOW, FILE_QUORUM)
        best = min(reader._backfill.bench_parse(data)[2] for _ in range(5))
        return float(best) * 1e9 / len(lines)
    raw = [line.encode() for line in lines]
    loads = orjson.loads
    t = time.perf_counter()
    if engine == "orjson":
        for line in raw:
            loads(line)
    else:
        for line in raw:
            with contextlib.suppress(InvalidEvent):
                parse_event(loads(line))
    return (time.perf_counter() - t) * 1e9 / len(lines)


def backfill(events: list[dict[str, object]], model: str, tmp: Path, engine: str) -> float:
    src = tmp / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    # the input as a user's log is: on disk, not dirty pages the kernel writes back while the backfill runs
    # (0.1 GB of them, just written, competed with the backfill for the two cores)
    os.sync()
    summary = run_backfill(src, tmp / "out.jsonl", EngineConfig(default_model=model), progress=False, engine=engine)
    assert summary.rejected == 0
    return summary.events_in / summary.seconds


def io_ceiling(tmp: Path) -> float:
    """Read the input file and write an output file of the backfill's size: what no engine can beat."""
    src, out = tmp / "in.jsonl", tmp / "out.jsonl"
    size_out = out.stat().st_size
    lines = src.read_bytes().count(b"\n")
    os.sync()  # the backfill's output written back first, as the backfill's run began with its input written back
    t = time.perf_counter()
    with open(src, "rb") as fh, open(tmp / "copy.jsonl", "wb") as dst:
        while block := fh.read(1 << 20):
            dst.write(block)
        dst.write(b"\0" * max(0, size_out - src.stat().st_size))
    return lines / (time.perf_counter() - t)


def long_journey(n: int, model: str, engine: str, repeats: int = 7) -> float:
    times = []
    for r in range(repeats):
        config = EngineConfig(default_model=model, max_journey_length=n + 1, allowed_lateness_ms=10**12,
                              max_future_skew_ms=10**12)
        touches = [Touchpoint(f"t{k}", "e", "u", "c", CHANNELS[k % 5], T0 + k * 1000, 0.0) for k in range(n)]
        conv = Conversion(f"c{r}", "u", "purchase", Decimal("1000.00"), "USD", T0 + n * 1000)
        if engine == "python":
            py = AttributionEngine(config)
            for tp in touches:
                py.apply(tp)
            gc.collect()
            t = time.perf_counter()
            out = py.apply(conv)
            times.append(time.perf_counter() - t)
            assert len(out) == n and sum(x.amount_minor for x in out) == 100000
        else:
            from pipeline.events.jsonl import event_to_json

            nat = NativeBackfill(config, None, NOW, 1)
            nat.feed(b"".join(orjson.dumps(event_to_json(tp)) + b"\n" for tp in touches), 1)
            _, rewards, seconds = nat._backfill.bench_engine(orjson.dumps(event_to_json(conv)), False)
            assert rewards == n
            times.append(seconds)
    return statistics.median(times)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def _touch(u: int, k: int) -> dict[str, object]:
    return {"type": "touchpoint", "touchpoint_id": f"tp-{u:07d}-{k}", "episode_id": f"ep-{u:07d}",
            "user_id": f"user-{u:07d}", "campaign_id": f"camp-{k}", "channel": CHANNELS[k], "timestamp": T0 + k * 1000,
            "immediate_reward": 0.0}


def memory(open_touches: int, engine: str) -> float:
    """Bytes per open touchpoint (RSS growth), users of 5 touchpoints each."""
    users = open_touches // 5
    config = EngineConfig(allowed_lateness_ms=10**12)
    gc.collect()
    before = _rss()
    if engine == "python":
        py = AttributionEngine(config)
        for u in range(users):
            for k in range(5):
                d = _touch(u, k)
                py.apply(Touchpoint(str(d["touchpoint_id"]), str(d["episode_id"]), str(d["user_id"]),
                                    str(d["campaign_id"]), str(d["channel"]), T0 + k * 1000, 0.0))
        gc.collect()
        grown = _rss() - before
        del py
    else:
        # the input is written to a file first and read back in large chunks, so the Python objects that
        # build it are not counted as the engine's memory
        with tempfile.NamedTemporaryFile() as log:
            for start in range(0, users, 20_000):
                log.write(b"".join(orjson.dumps(_touch(u, k)) + b"\n"
                                   for u in range(start, min(users, start + 20_000)) for k in range(5)))
            log.flush()
            gc.collect()
            before = _rss()
            nat = NativeBackfill(config, None, NOW, 1)
            with open(log.name, "rb") as f:
                for chunk in read_chunks(f):
                    assert isinstance(chunk, Chunk)
                    nat.feed(chunk.data, chunk.first_line)
            gc.collect()
            grown = _rss() - before
            release_free_memory()
            print(f"held {(_rss() - before) / (users * 5):.1f}")  # once the allocator has returned its free pages
        assert nat.stats().pending_touchpoints == users * 5
        del nat
    gc.collect()
    return grown / (users * 5)


def fresh_memory(what: str, open_touches: int) -> tuple[float, float | None]:
    """``memory`` (or the baseline) in a process of its own: RSS growth in a process that has already run the
    other phases is smaller, because the allocator reuses the heap they freed (107 B against 126 B a touchpoint
    for the same native build), so the figure would depend on what ran before it."""
    out = subprocess.run([sys.executable, "-m", "bench.bench_engine", "--memory-of", what,
                          "--open-touches", str(open_touches)], check=True, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    held = [float(line.split()[1]) for line in lines if line.startswith("held ")]
    return float(lines[-1]), (held[0] if held else None)


def baseline_memory(open_touches: int) -> float:
    users = open_touches // 5
    gc.collect()
    before = _rss()
    plain: dict[str, list[dict[str, object]]] = {}
    for u in range(users):
        plain[f"user-{u:07d}"] = [{**_touch(u, k), "earned": Decimal(0)} for k in range(5)]
    gc.collect()
    grown = _rss() - before
    del plain
    return grown / (users * 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--model", default="linear")
    ap.add_argument("--open-touches", type=int, default=1_000_000)
    ap.add_argument("--engines", default="python,native", help="comma-separated (default: python,native)")
    ap.add_argument("--memory-of", choices=["python", "native", "baseline"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_of:  # one measurement in this fresh process (see fresh_memory)
        fn = baseline_memory if args.memory_of == "baseline" else partial(memory, engine=args.memory_of)
        print(fn(args.open_touches))
        return
    engines = [e for e in args.engines.split(",") if e != "native" or available()]
    print(f"attribution core benchmark (model {args.model}); figures are this machine's, one run")
    print(f"{'journey':>10} {'events':>9} " + "".join(f"{e + ' engine':>16} {e + ' backfill':>17}" for e in engines)
          + f" {'read+write only':>16}  (events/s; the backfill columns over a log {BACKFILL_SCALE}x as long)")
    first_passes = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for touches in (1, 5, 20):
            users = max(1000, args.users * 5 // (touches + 1))
            events = journey_log(users, touches)
            # the backfill over a log BACKFILL_SCALE times as long: a 100k-event backfill takes 0.2-0.5 s, mostly
            # its start and its end-of-input flush, while the ones users run take minutes to hours
            longer = journey_log(users * BACKFILL_SCALE, touches)
            row = f"{touches:>7} tp {len(events):>9,} "
            for engine in engines:
                if engine == "python":
                    eng = python_engine(events, args.model)
                else:
                    first, eng = native_engine(events, args.model)
                    first_passes.append(f"{touches} tp {first:,.0f}")
                bf = backfill(longer, args.model, tmp, engine)
                row += f"{eng:>16,.0f} {bf:>17,.0f}"
            print(row + f" {io_ceiling(tmp):>16,.0f}", flush=True)
        lines = generate(LogSpec(users=24_800, seed=7))
        config = load_engine_config(write_engine_config(tmp / "synthetic.toml"))
        figures = ", ".join(f"{e} {synthetic_log(lines, config, e):,.0f}" for e in engines)
        print(f"engine alone over rewardstream fit's synthetic log (217,881 events, journeys of 1-20 touchpoints): "
              f"{figures} events/s", flush=True)
        figures = ", ".join(f"{e} {reading(lines, config, e):,.0f} ns" for e in [*engines, "orjson"])
        print(f"reading a line of that log into an event (no engine): {figures} (orjson: JSON to a dict only)",
              flush=True)
    if first_passes:
        print("native engine: the 1/5/20 column is the median of repeated passes; the process's first pass ran "
              + ", ".join(first_passes) + " events/s")
    for model in ("linear", "time_decay", "position_based"):
        figures = ", ".join(f"{e} {long_journey(10_000, model, e) * 1000:.3f} ms" for e in engines)
        print(f"one conversion over a 10,000-touchpoint journey ({model}): {figures}", flush=True)
    baseline, _ = fresh_memory("baseline", args.open_touches)
    parts = []
    for e in engines:
        grown, held = fresh_memory(e, args.open_touches)
        parts.append(f"{e} {grown:,.1f} B" + ("" if held is None else f" ({held:,.1f} B once the allocator has "
                                                                     "returned its free pages)"))
    figures = ", ".join(parts)
    print(f"memory per open touchpoint ({args.open_touches:,} open): {figures}; plain dict-of-dicts {baseline:,.0f} B")


if __name__ == "__main__":
    main()
