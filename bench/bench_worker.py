"""Streaming worker benchmark on the real broker, with its ceilings measured in the same run.

Phases (``--phases``, default all):

throughput  ≥ 100k preloaded events (touchpoints and conversions, Avro, 8 partitions), consumed by:
            - plain confluent-kafka consume → produce, to the known end offsets (no tail timeout);
            - Faust's bare loop with the worker's App settings (iterate, ack, commit), per event and with
              ``take_events`` batches;
            - a Quix Streams stateful counter (per-user state in RocksDB, one output per input), in a
              virtualenv of its own (it pins another confluent-kafka);
            - the worker (one process).
            Each rate is events / (last event − first event) as the consumer itself timed them.
latency     a conversion produced → its attribution readable on the rewards topic (p50/p99), while the
            worker carries half of its measured rate, and 1 % of it (fresh topics, live event times).
memory      worker RSS and on-disk state with ``--open-touchpoints`` open touchpoints (default 1,000,000).
finals      a partition that goes silent: when each final arrives, against when it was due.
trigger     ``DelayedRewardSystem.trigger_attribution``: the first call of each of ``--new-systems`` new systems
            (p50), then on a warm system, p50, with and without an eligible touchpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from pipeline.events.avro import AvroCodec, conversion_to_record, reward_from_record, touchpoint_to_record
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Event, RewardKind, Touchpoint
from pipeline.kafka import consumer_config, drain, ensure_topics, producer_config
from pipeline.local_kafka import LocalKafka
from pipeline.local_kafka.broker import default_cache_dir
from pipeline.ports import free_port
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.shell.worker_process import WorkerProcess
from pipeline.synthetic import LogSpec, generate, write_engine_config

QUIX_VERSION = "3.28.1"
PHASES = ("throughput", "latency", "memory", "finals", "trigger")


def say(line: str) -> None:
    print(line, flush=True)


def row(name: str, value: str) -> None:
    say(f"  {name:<46} {value}")


def fresh_settings(bootstrap: str, label: str) -> Settings:
    tag = f"{label}-{uuid.uuid4().hex[:8]}"
    s = Settings(bootstrap_servers=bootstrap, app_id=f"bench-{tag}", topic_touchpoints=f"bench.{tag}.touchpoints",
                 topic_conversions=f"bench.{tag}.conversions", topic_rewards=f"bench.{tag}.rewards",
                 topic_dead_letters=f"bench.{tag}.dead-letters", standby_replicas=0)
    ensure_topics(s)
    return s


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(consumer_config(settings, f"bench-ends-{uuid.uuid4().hex[:6]}"))
    out = {}
    for topic in (settings.topic_touchpoints, settings.topic_conversions):
        for p in range(settings.partitions):
            out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
    c.close()
    return out


# ------------------------------------------------------------------------------------------------ ceilings

def passthrough(settings: Settings, ends: dict[tuple[str, int], int]) -> float:
    """confluent-kafka consume → produce of every input record, until each partition reached its end
    offset; the produced records are flushed (acknowledged) before the clock stops."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer(consumer_config(settings, f"bench-pass-{uuid.uuid4().hex[:6]}"))
    consumer.assign([TopicPartition(t, p, 0) for (t, p) in ends])
    producer = Producer(producer_config(settings))
    out = settings.topic_rewards + ".passthrough"
    ensure_topics(settings, [out])
    left = {tp: end for tp, end in ends.items() if end > 0}
    total = sum(left.values())
    n = 0
    start = None
    while left:
        for msg in drain(consumer, 10000, 1.0):
            if msg.error():
                continue
            start = start or time.perf_counter()
            while True:
                try:
                    producer.produce(out, key=msg.key(), value=msg.value())
                    break
                except BufferError:
                    producer.poll(0.001)
            n += 1
            tp = (msg.topic(), msg.partition())
            if msg.offset() + 1 >= left.get(tp, 0):
                left.pop(tp, None)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    assert n == total, (n, total)
    return n / elapsed


def _run_child(cmd: list[str], result: Path, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    log = result.with_suffix(".log")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not result.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(0.2)
        if not result.exists():
            raise RuntimeError(f"{cmd[1:3]} gave no result:\n{log.read_text()[-3000:]}")
        data: dict[str, Any] = json.loads(result.read_text())
        return data
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait(30)


def faust_bare(settings: Settings, total: int, tmp: Path, take: bool) -> float:
    label = "take" if take else "loop"
    result = tmp / f"faust-{label}.json"
    cmd = [sys.executable, "-m", "bench.faust_bare", "--bootstrap", settings.bootstrap_servers,
           "--touchpoints", settings.topic_touchpoints, "--conversions", settings.topic_conversions,
           "--app-id", f"{settings.app_id}-bare-{label}", "--datadir", str(tmp / f"faust-{label}-data"),
           "--web-port", str(free_port()), "--total", str(total), "--result", str(result)]
    data = _run_child([*cmd, "--take"] if take else cmd, result, 600)
    return float(data["events"]) / (data["last"] - data["first"])


def quix_python() -> Path:
    """A virtualenv with Quix Streams, made once in the project cache."""
    venv = default_cache_dir() / "bench-venvs" / f"quix-{QUIX_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        say(f"  (creating {venv} with quixstreams=={QUIX_VERSION})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], check=True)
        (venv / ".installed").touch()
    return python


def quix_stateful(settings: Settings, total: int, tmp: Path) -> float:
    result = tmp / "quix.json"
    script = Path(__file__).with_name("quix_stateful.py")
    cmd = [str(quix_python()), "-W", "ignore", str(script), "--bootstrap", settings.bootstrap_servers,
           "--touchpoints", settings.topic_touchpoints, "--conversions", settings.topic_conversions,
           "--output", settings.topic_rewards + ".quix", "--group", f"{settings.app_id}-quix",
           "--state-dir", str(tmp / "quix-state"), "--total", str(total), "--result", str(result)]
    data = _run_child(cmd, result, 600, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return float(data["events"]) / (data["last"] - data["first"])


# ------------------------------------------------------------------------------------------------ the worker

def worker_config(tmp: Path, **overrides: Any) -> Path:
    return write_engine_config(tmp / f"worker-{uuid.uuid4().hex[:6]}.toml", **{"max_future_skew_hours": 24 * 60,
                                                                                  **overrides})


def wait_processed(worker: WorkerProcess, total: int, timeout: float) -> tuple[float, dict[str, Any]]:
    """Events/s between the worker's first and last event. Uses the worker's own timestamps when /stats/
    has them; else polls /stats/ every 50 ms (≤ 50 ms error on each end)."""
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    stats: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = worker.stats() or stats
        seen = int(stats.get("events_in", 0))
        now = time.time()
        if seen and first is None:
            first = (now, seen)
        if last is None or seen > last[1]:
            last = (now, seen)
        if seen >= total:
            break
        if not worker.alive():
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        time.sleep(0.05)
    else:
        raise RuntimeError(f"worker processed {stats.get('events_in')} of {total} in {timeout:.0f} s\n{worker.tail()}")
    if stats.get("first_event_at") and stats.get("last_event_at"):
        return stats["events_in"] / (stats["last_event_at"] - stats["first_event_at"]), stats
    assert first is not None and last is not None
    return (last[1] - first[1]) / (last[0] - first[0]), stats


def rss_mib(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)], capture_output=True, text=True)
    return sum(int(x) for x in out.stdout.split()) / 1024


def disk_mib(path: Path) -> float:
    du = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()
    return int(du[0]) / 1024 if du else 0.0


def phase_throughput(bootstrap: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """Returns each runtime's rate (with the first engine)."""
    settings = fresh_settings(bootstrap, "tput")
    events = [parse_event(orjson.loads(line)) for line in generate(LogSpec(users=args.users, seed=21))]
    with EventProducer(settings) as producer:
        for ev in events:
            producer.send(ev)
    ends = end_offsets(settings)
    total = sum(ends.values())
    say(f"throughput: {total:,} events preloaded on {settings.partitions} partitions "
        f"({sum(isinstance(e, Touchpoint) for e in events):,} touchpoints)")
    rates: dict[str, float] = {"confluent-kafka consume → produce": passthrough(settings, ends)}
    rates["Faust bare loop (per event)"] = faust_bare(settings, total, tmp, take=False)
    rates["Faust bare loop (take_events)"] = faust_bare(settings, total, tmp, take=True)
    if not args.no_quix:
        rates["Quix Streams stateful counter"] = quix_stateful(settings, total, tmp)
    results: dict[str, tuple[float, dict[str, Any], float, float]] = {}
    for runtime, engine in worker_kinds(args):  # the same input, a fresh consumer group and state for each
        name = f"{runtime}-{engine}"
        worker = WorkerProcess(settings.with_overrides(runtime=runtime, engine=engine,
                                                       app_id=f"{settings.app_id}-{name}"),
                               worker_config(tmp), tmp, f"tput-{name}").start()
        try:
            rate, stats = wait_processed(worker, total, 1800)
            assert worker.proc is not None
            results[name] = (rate, stats, rss_mib(worker.proc.pid), disk_mib(worker.datadir))
        finally:
            worker.stop()
    for name, r in rates.items():
        row(name, f"{r:>10,.0f} events/s   worker ratio "
                  + ", ".join(f"{w} {res[0] / r:.3f}" for w, res in results.items()))
    faust_best = max(rates["Faust bare loop (per event)"], rates["Faust bare loop (take_events)"])
    for name, (rate, stats, rss, disk) in results.items():
        row(f"worker, {name}", f"{rate:>10,.0f} events/s   / best Faust bare loop {rate / faust_best:.3f}")
        row("  RSS / on-disk state", f"{rss:>10,.0f} MiB / {disk:,.1f} MiB "
            f"({stats.get('pending_touchpoints', 0):,} open touchpoints); rejected {stats.get('rejected')}, "
            f"duplicates {stats.get('duplicates')}; {stats.get('events_in', 0) / max(1, stats.get('batches', 0)):,.0f} "
            f"events per batch (or transaction)")
    return {name.split("-")[0]: res[0] for name, res in reversed(results.items())}


def worker_kinds(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(runtime, engine) of each worker the throughput phase runs: every runtime with the first engine, then the
    other engines on the first runtime."""
    runtimes, engines = args.runtimes.split(","), args.engines.split(",")
    return [(r, engines[0]) for r in runtimes] + [(runtimes[0], e) for e in engines[1:]]


# ------------------------------------------------------------------------------------------------ latency

class RewardWatch(threading.Thread):
    """Reads the rewards topic from its end and notes when each conversion's first attribution (or explicit
    'unattributed' answer) is readable, and when each final arrives."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(consumer_config(settings, f"bench-watch-{uuid.uuid4().hex[:6]}"))
        self.consumer.assign([TopicPartition(settings.topic_rewards, p, -1) for p in range(settings.partitions)])
        self.codec = AvroCodec("attributed_reward")
        self.conversions: dict[str, float] = {}
        self.finals: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for msg in drain(self.consumer, 5000, 0.05):
                if msg.error() or msg.value() is None:
                    continue
                now = time.time()
                r = reward_from_record(self.codec.decode(msg.value()))
                if r.kind is RewardKind.FINAL:
                    self.finals.setdefault(r.touchpoint_id, now)
                elif r.conversion_id is not None:
                    self.conversions.setdefault(r.conversion_id, now)
        self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def _encoded(event: Event) -> tuple[str, bytes, bytes]:
    if isinstance(event, Touchpoint):
        return "tp", event.user_id.encode(), TP_CODEC.encode(touchpoint_to_record(event))
    return "cv", event.user_id.encode(), CV_CODEC.encode(conversion_to_record(event))


TP_CODEC = AvroCodec("touchpoint")
CV_CODEC = AvroCodec("conversion")


def _produce(producer: Any, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.01)


def offered_load(settings: Settings, producer: Any, rate: float, seconds: float, probe_every: float,
                 watch: RewardWatch) -> tuple[list[float], float]:
    """(latencies, the rate achieved): background touchpoints at ``rate`` events/s (fresh users, live event
    times) and, every ``probe_every`` s, a touchpoint + conversion pair whose conversion is timed until its
    attribution.
    ``producer`` is made once and warmed up by the caller: a new idempotent producer holds its first records
    for ~0.5 s (metadata, producer id), which the first probes would otherwise count as the worker's latency."""
    topic = {"tp": settings.topic_touchpoints, "cv": settings.topic_conversions}
    sent: dict[str, float] = {}
    start = time.time()
    next_probe = start
    done = 0
    i = 0
    while (now := time.time()) < start + seconds:
        due = int((now - start) * rate)
        while done < due:
            user = f"load-{i % 50000}"
            kind, key, value = _encoded(Touchpoint(f"lt-{uuid.uuid4().hex[:12]}", "load", user, "c", "display",
                                                   int(time.time() * 1000), 0.0))
            _produce(producer, topic[kind], key, value)
            done += 1
            i += 1
        if now >= next_probe:
            next_probe += probe_every
            user = f"probe-{uuid.uuid4().hex[:10]}"
            t = int(time.time() * 1000)
            for ev in (Touchpoint(f"{user}-t", "probe", user, "c", "search", t, 0.0),
                       Conversion(f"{user}-c", user, "purchase", Decimal("1.00"), "USD", t)):
                kind, key, value = _encoded(ev)
                _produce(producer, topic[kind], key, value)
            sent[f"{user}-c"] = time.time()
        producer.poll(0)
        time.sleep(0.001)
    achieved = done / (time.time() - start)
    producer.flush(30)
    deadline = time.time() + 30
    while time.time() < deadline and any(c not in watch.conversions for c in sent):
        time.sleep(0.1)
    missing = [c for c in sent if c not in watch.conversions]
    if missing:
        say(f"  ({len(missing)} of {len(sent)} probes had no answer within 30 s)")
    return [watch.conversions[c] - t for c, t in sent.items() if c in watch.conversions], achieved


def phase_latency(bootstrap: str, rate: float, runtime: str, args: argparse.Namespace, tmp: Path) -> None:
    settings = fresh_settings(bootstrap, "lat").with_overrides(runtime=runtime)
    worker = WorkerProcess(settings, worker_config(tmp), tmp, f"lat-{runtime}").start()
    watch = RewardWatch(settings)
    watch.start()
    from confluent_kafka import Producer

    producer = Producer(producer_config(settings, **{"linger.ms": 1}))
    try:
        say(f"latency, {runtime} runtime: conversion produced → its attribution readable (read_committed; probes "
            "every 50 ms, live event times)")
        offered_load(settings, producer, 0, 8, 0.25, watch)  # warm-up: group join, first fetches, producer id
        for share in (0.5, 0.01):
            latencies, achieved = offered_load(settings, producer, rate * share, args.latency_seconds, 0.05, watch)
            label = f"at {share:.0%} of max ({rate * share:,.0f} events/s; offered {achieved:,.0f})"
            if len(latencies) < 20:
                row(label, f"only {len(latencies)} answers")
                continue
            q = statistics.quantiles(latencies, n=100)
            row(label, f"p50 {q[49] * 1000:>6.0f} ms   p99 {q[98] * 1000:>6.0f} ms   ({len(latencies)} probes)")
    finally:
        watch.stop()
        worker.stop()


# ------------------------------------------------------------------------------------------------ memory

def phase_memory(bootstrap: str, runtime: str, args: argparse.Namespace, tmp: Path) -> None:
    from confluent_kafka import Producer

    settings = fresh_settings(bootstrap, "mem").with_overrides(runtime=runtime)
    n = args.open_touchpoints
    per_user = 4
    now = int(time.time() * 1000) - 3_600_000
    producer = Producer(producer_config(settings))
    for i in range(n):
        user = f"m-{i // per_user}"
        _, key, value = _encoded(Touchpoint(f"m-{i}", f"e-{i // per_user}", user, f"camp-{i % 7}",
                                            ("search", "display", "email")[i % 3], now + i % 3_000_000, 0.0,
                                            None, [0.1, 0.2, 0.3, 0.4], i % 5))
        while True:
            try:
                producer.produce(settings.topic_touchpoints, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    say(f"memory, {runtime} runtime: {n:,} open touchpoints ({n // per_user:,} users, none final) preloaded")
    worker = WorkerProcess(settings, worker_config(tmp), tmp, f"mem-{runtime}").start()
    try:
        rate, stats = wait_processed(worker, n, 7200)
        time.sleep(5)
        assert worker.proc is not None
        row("worker RSS", f"{rss_mib(worker.proc.pid):>10,.0f} MiB with "
                          f"{(worker.stats() or stats).get('pending_touchpoints', 0):,} open touchpoints")
        row("on-disk state", f"{disk_mib(worker.datadir):>10,.0f} MiB ({rate:,.0f} events/s while loading)")
    finally:
        worker.stop()


# ------------------------------------------------------------------------------------------------ finals

def phase_finals(bootstrap: str, args: argparse.Namespace, tmp: Path) -> None:
    """Live touchpoints (event time = now) on every partition, then silence. Window 30 s, lateness 3 s, a
    maximum event delay of 2 s, idle timeout 5 s: a final is due (may first go out) at touch time + window
    + lateness + maximum delay; without new events it has to come from the wall clock."""
    from confluent_kafka import Producer

    window_s, lateness_s, delay_s = 30.0, 3.0, 2
    settings = fresh_settings(bootstrap, "fin").with_overrides(max_event_delay_seconds=delay_s)
    config = worker_config(tmp, window_days=window_s / 86400, windows_days={}, allowed_lateness_minutes=lateness_s / 60)
    worker = WorkerProcess(settings, config, tmp, "fin", idle_timeout_seconds=5).start()
    watch = RewardWatch(settings)
    watch.start()
    producer = Producer(producer_config(settings))
    try:
        time.sleep(8)
        due: dict[str, float] = {}
        for i in range(200):
            t = time.time()
            user = f"f-{i}"
            _, key, value = _encoded(Touchpoint(f"f-{i}", "e", user, "c", "search", int(t * 1000), 0.0))
            producer.produce(settings.topic_touchpoints, key=key, value=value)
            due[f"f-{i}"] = int(t * 1000) / 1000 + window_s + lateness_s + delay_s
            time.sleep(0.01)
        producer.flush(10)
        say(f"finals: 200 touchpoints over 2 s on {settings.partitions} partitions, then silence; window "
            f"{window_s:.0f} s, lateness {lateness_s:.0f} s, max event delay {delay_s:.0f} s, idle timeout 5 s")
        wait_until = max(due.values()) + 60
        while time.time() < wait_until and len(watch.finals) < len(due):
            time.sleep(0.2)
        late = [watch.finals[t] - d for t, d in due.items() if t in watch.finals]
        if not late:
            row("finals of a silent partition", f"none of {len(due)} arrived within 60 s after due")
            return
        early = sum(x < 0 for x in late)
        row("finals of a silent partition", f"{len(late)} of {len(due)}; after due: p50 "
            f"{statistics.median(late):.1f} s, max {max(late):.1f} s ({early} before due)")
    finally:
        watch.stop()
        worker.stop()


# ------------------------------------------------------------------------------------------------ trigger

def phase_trigger(bootstrap: str, args: argparse.Namespace, tmp: Path) -> None:
    from pipeline.system import DelayedRewardConfig, DelayedRewardSystem

    settings = fresh_settings(bootstrap, "trig")
    worker = WorkerProcess(settings, worker_config(tmp), tmp, "trig").start()

    config = DelayedRewardConfig(attribution_timeout_seconds=args.trigger_timeout, state_dir=str(tmp / "trig-state"))

    async def one(system: DelayedRewardSystem, with_touch: bool) -> tuple[float, dict[str, float]]:
        user = f"trig-{uuid.uuid4().hex[:10]}"
        if with_touch:
            await system.store_pending_reward(episode_id="e", user_id=user, campaign_id="c", channel="search")
        t = time.perf_counter()
        split = await system.trigger_attribution(user, "purchase", "10.00")
        return time.perf_counter() - t, split

    async def first_calls() -> list[float]:
        """The first call of new systems (each one's producer and replay buffer new), once the worker answers."""
        firsts = []
        for i in range(args.new_systems + 1):
            system = DelayedRewardSystem(config, settings)
            try:
                seconds, _ = await one(system, True)
            finally:
                system.close()
            if i:  # the first one also waited for the worker's own start
                firsts.append(seconds)
        return firsts

    async def run() -> tuple[list[float], list[float], int]:
        system = DelayedRewardSystem(config, settings)
        try:
            await one(system, True)  # warm: worker and buffer have joined and answered once
            with_touch, without, empty = [], [], 0
            for _ in range(args.trigger_calls):
                seconds, split = await one(system, True)
                with_touch.append(seconds)
                empty += not split
            for _ in range(args.trigger_calls):
                seconds, split = await one(system, False)
                without.append(seconds)
            return with_touch, without, empty
        finally:
            system.close()

    try:
        firsts = asyncio.run(first_calls())
        row("trigger_attribution, first call of a new system",
            f"p50 {statistics.median(firsts) * 1000:>6.0f} ms  max {max(firsts) * 1000:.0f} ms ({len(firsts)} systems)")
        with_touch, without, empty = asyncio.run(run())
        row("trigger_attribution, eligible touchpoint",
            f"p50 {statistics.median(with_touch) * 1000:>6.0f} ms  max {max(with_touch) * 1000:.0f} ms "
            f"({len(with_touch)} calls, {empty} returned nothing)")
        row("trigger_attribution, no eligible touchpoint",
            f"p50 {statistics.median(without) * 1000:>6.0f} ms  max {max(without) * 1000:.0f} ms "
            f"({len(without)} calls)")
    finally:
        worker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {','.join(PHASES)}")
    ap.add_argument("--users", type=int, default=11500, help="users in the throughput log (11,500 ≈ 101,600 events)")
    ap.add_argument("--rate", type=float, help="the workers' max rate for the latency phase (default: measured)")
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--open-touchpoints", type=int, default=1_000_000)
    ap.add_argument("--trigger-calls", type=int, default=10)
    ap.add_argument("--trigger-timeout", type=float, default=30.0)
    ap.add_argument("--new-systems", type=int, default=5, help="new systems whose first trigger_attribution is timed")
    ap.add_argument("--no-quix", action="store_true", help="skip the Quix Streams baseline")
    ap.add_argument("--runtimes", default="faust,kafka",
                    help="worker runtimes to measure (throughput, latency and memory phases), each with the first "
                         "engine")
    ap.add_argument("--engines", default="native,python",
                    help="attribution engines the worker runs with in the throughput phase (the first one's rate "
                         "drives the latency phase)")
    args = ap.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases {sorted(unknown)}")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or LocalKafka().start()[0].bootstrap
    assert bootstrap
    rates = dict.fromkeys(args.runtimes.split(","), args.rate or 0.0)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for phase in phases:
            t = time.monotonic()
            if phase == "throughput":
                rates.update(phase_throughput(bootstrap, args, tmp))
            elif phase == "latency":
                for runtime, rate in rates.items():
                    phase_latency(bootstrap, rate or 1000.0, runtime, args, tmp)
            elif phase == "memory":
                for runtime in rates:
                    phase_memory(bootstrap, runtime, args, tmp)
            elif phase == "finals":
                phase_finals(bootstrap, args, tmp)
            elif phase == "trigger":
                phase_trigger(bootstrap, args, tmp)
            say(f"  ({phase}: {time.monotonic() - t:.0f} s)")


if __name__ == "__main__":
    main()
