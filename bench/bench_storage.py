"""Storage benchmark: the PostgreSQL ledger sink and the Redis cache, on the project's local servers and a Kafka
broker (KAFKA_BOOTSTRAP, else the local broker).

Prints: facts/s of the ledger sink (N facts already in the topic, from the sink's start to the last one
committed; exactly once checked: rows = distinct facts, sums equal); reward → visible in SQL latency (p50, p99,
max) with facts produced at a steady rate (default 3,750/s, half of the worker's events/s) and a reader polling
for probe facts; the cache writer's facts/s; Redis lookup latency of a touchpoint's reward (p50, p99, max over
random ids); kill -9 of the sink (a child process) at three points and a PostgreSQL stop/start mid-stream (lost
and doubled facts). Targets (issue 27): ≥ 50,000 facts/s; p99 ≤ 1 s; lookup p99 ≤ 1 ms; 0 lost, 0 doubled.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.kafka.clients import producer_config
from pipeline.kafka.topics import ensure_topics
from pipeline.local_kafka import LocalKafka
from pipeline.local_servers import LocalPostgres, LocalRedis
from pipeline.settings import Settings
from pipeline.sinks.postgres import PostgresSink
from pipeline.sinks.redis_cache import CacheWriter, RewardCache

T0 = 1_767_225_600_000
CHANNELS = ("search", "display", "social", "email", "video")


def fact(i: int) -> AttributedReward:
    """Fact ``i`` of a stream with every kind: shares and corrections of conversions, finals, unattributed."""
    user, tp, conv = f"u{i // 20}", f"tp-{i // 4}", f"c-{i // 8}"
    kind = (RewardKind.ATTRIBUTION, RewardKind.ATTRIBUTION, RewardKind.CORRECTION, RewardKind.FINAL,
            RewardKind.ATTRIBUTION, RewardKind.CORRECTION, RewardKind.REFUND, RewardKind.UNATTRIBUTED)[i % 8]
    if kind is RewardKind.FINAL:
        return AttributedReward(kind, tp, "ep", user, f"camp-{i % 13}", CHANNELS[i % 5], 0, 1000 + i % 977, "USD",
                                0.5, T0 + i)
    if kind is RewardKind.UNATTRIBUTED:
        return AttributedReward(kind, "", "", user, "", "", 0, 0, "USD", 0.0, T0 + i, conversion_id=f"x-{i}",
                                reason="unknown_user", event="purchase")
    return AttributedReward(kind, tp, "ep", user, f"camp-{i % 13}", CHANNELS[i % 5], i % 3, (i * 37) % 5000 - 200,
                            "USD", 0.5, T0 + i, conversion_id=conv, model="linear", currency="USD",
                            local_amount_minor=(i * 37) % 5000, conversion_value_minor=25_000,
                            conversion_time_ms=T0 + i + 3_600_000, position=i % 4, journey_length=4, event="purchase")


class Producer:
    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self.topic = settings.topic_rewards
        self.codec = AvroCodec("attributed_reward")
        self.producer = KafkaProducer(producer_config(settings, **{"linger.ms": 5, "batch.num.messages": 10000}))

    def send(self, r: AttributedReward) -> None:
        value = self.codec.encode(reward_to_record(r))
        while True:
            try:
                self.producer.produce(self.topic, key=r.user_id.encode(), value=value)
                return
            except BufferError:
                self.producer.poll(0.01)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


def in_topic(settings: Settings, n: int) -> list[AttributedReward]:
    """Facts 0..n-1, produced to the rewards topic before the sink starts."""
    facts = [fact(i) for i in range(n)]
    producer = Producer(settings)
    for r in facts:
        producer.send(r)
    producer.flush()
    return facts


def fresh(bootstrap: str, tag: str) -> Settings:
    run = f"bench-storage-{tag}-{uuid.uuid4().hex[:6]}"
    s = Settings(bootstrap_servers=bootstrap, app_id=run, topic_touchpoints=f"{run}.touchpoints",
                 topic_conversions=f"{run}.conversions", topic_rewards=f"{run}.rewards",
                 topic_dead_letters=f"{run}.dead-letters", partitions=8)
    ensure_topics(s, [s.topic_touchpoints, s.topic_rewards])
    return s


def new_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def ledger_count(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM reward_ledger").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else 0


def check_exactly_once(url: str, facts: list[AttributedReward]) -> tuple[int, int]:
    """(lost, doubled): facts missing from the ledger; rows beyond one per fact or amounts that disagree."""
    expected = {r.reward_id: r.amount_minor for r in facts}
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT reward_id, amount_minor FROM reward_ledger").fetchall()
    got: dict[str, int] = {}
    doubled = 0
    for rid, amount in rows:
        doubled += rid in got or expected.get(rid) != amount
        got[rid] = amount
    return len(expected.keys() - got.keys()), doubled


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def wait(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's wait timed out")
        time.sleep(0.02)


def throughput(bootstrap: str, server: str, n: int) -> tuple[Settings, list[AttributedReward]]:
    settings = fresh(bootstrap, "tp")
    facts = in_topic(settings, n)
    url = new_database(server)
    sink = PostgresSink(settings, url)
    started = time.perf_counter()
    sink.start()
    wait(lambda: sink.stats["facts"] >= n, 600)
    elapsed = time.perf_counter() - started
    sink.close()
    lost, doubled = check_exactly_once(url, facts)
    print(f"ledger sink: {n:,} facts in {elapsed:.2f} s = {n / elapsed:,.0f} facts/s "
          f"({sink.stats['batches']} transactions); lost {lost}, doubled {doubled}")
    return settings, facts


def freshness(bootstrap: str, server: str, rate: float, seconds: float) -> None:
    settings = fresh(bootstrap, "lat")
    url = new_database(server)
    sink = PostgresSink(settings, url).start()
    producer = Producer(settings)
    probes: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def reader() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not (done.is_set() and not probes):
                with lock:
                    waiting = list(probes)
                if waiting:
                    seen = conn.execute("SELECT reward_id FROM reward_ledger WHERE reward_id = ANY(%s)",
                                        (waiting,)).fetchall()
                    now = time.perf_counter()
                    with lock:
                        for (rid,) in seen:
                            latencies.append(now - probes.pop(rid))
                time.sleep(0.005)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        r = fact(i)
        if i % 10 == 0:
            with lock:
                probes[r.reward_id] = time.perf_counter()
        producer.send(r)
        producer.producer.poll(0)
    producer.flush()
    done.set()
    thread.join(120)
    sink.close()
    ms = [x * 1000 for x in latencies]
    print(f"reward -> visible in SQL at {rate:,.0f} facts/s for {seconds:.0f} s ({len(ms)} probes): p50 "
          f"{pct(ms, 50):.0f} ms, p99 {pct(ms, 99):.0f} ms, max {max(ms):.0f} ms")


def cache(settings: Settings, facts: list[AttributedReward], redis_url: str, lookups: int) -> None:
    writer = CacheWriter(settings, redis_url, 7 * 86400)
    started = time.perf_counter()
    writer.start()
    wait(writer.caught_up.is_set, 600)
    elapsed = time.perf_counter() - started
    writer.close()
    print(f"cache writer: {len(facts):,} facts in {elapsed:.2f} s = {len(facts) / elapsed:,.0f} facts/s")
    reader = RewardCache(redis_url, settings.topic_rewards)
    ids = [r.touchpoint_id for r in facts if r.touchpoint_id]
    rng = random.Random(5)
    times = []
    missing = 0
    for _ in range(lookups):
        tid = rng.choice(ids)
        t = time.perf_counter()
        got = reader.touchpoint_reward(tid)
        times.append((time.perf_counter() - t) * 1e6)
        missing += got is None
    reader.close()
    print(f"redis lookup of a touchpoint's reward ({lookups:,} random ids, {missing} missing): p50 "
          f"{pct(times, 50):.0f} µs, p99 {pct(times, 99):.0f} µs, max {max(times):.0f} µs")


def kill_9(bootstrap: str, server: str, n: int) -> None:
    settings = fresh(bootstrap, "kill")
    facts = in_topic(settings, n)
    url = new_database(server)
    env = {**os.environ, **settings.environment()}
    cmd = [sys.executable, "-m", "pipeline.cli.main", "sink", "postgres", "--database-url", url, "--max-batch", "2000"]
    kills = 0
    for fraction in (0.2, 0.5, 0.8):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda f=fraction: ledger_count(url) >= f * n, 300)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait(lambda: ledger_count(url) >= n, 300)
    time.sleep(1.0)  # anything doubled would land now
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    lost, doubled = check_exactly_once(url, facts)
    print(f"kill -9 of the sink x{kills} during {n:,} facts: lost {lost}, doubled {doubled}")


def postgres_restart(bootstrap: str, n: int) -> None:
    settings = fresh(bootstrap, "pgrestart")
    facts = [fact(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalPostgres(instance="bench-restart", cache_dir=Path(tmp))
        status, _ = server.start()
        assert status.address
        url = status.address
        sink = PostgresSink(settings, url, max_batch=2000, retry_seconds=0.2).start()
        producer = Producer(settings)
        for r in facts[: n // 2]:
            producer.send(r)
        producer.flush()
        wait(lambda: ledger_count(url) > 0, 60)
        server.stop()
        for r in facts[n // 2:]:
            producer.send(r)
        producer.flush()
        time.sleep(2.0)
        server.start()
        wait(lambda: ledger_count(url) >= n, 300)
        time.sleep(1.0)
        sink.close()
        lost, doubled = check_exactly_once(url, facts)
        server.stop(purge=True)
    print(f"PostgreSQL stopped mid-stream for 2 s and started again during {n:,} facts: lost {lost}, "
          f"doubled {doubled}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--facts", type=int, default=200_000)
    p.add_argument("--rate", type=float, default=3750.0, help="facts/s of the freshness run")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--lookups", type=int, default=20_000)
    p.add_argument("--only", choices=["throughput", "freshness", "cache", "faults"], default=None)
    args = p.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or LocalKafka().start()[0].bootstrap or ""
    pg = LocalPostgres(instance="bench")
    redis = LocalRedis(instance="bench")
    server = pg.start()[0].address or ""
    redis_url = redis.start()[0].address or ""
    try:
        if args.only in (None, "throughput", "cache"):
            settings, facts = throughput(bootstrap, server, args.facts)
            if args.only in (None, "cache"):
                cache(settings, facts, redis_url, args.lookups)
        if args.only in (None, "freshness"):
            freshness(bootstrap, server, args.rate, args.seconds)
        if args.only in (None, "faults"):
            kill_9(bootstrap, server, args.facts // 2)
            postgres_restart(bootstrap, args.facts // 4)
    finally:
        pg.stop(purge=True)
        redis.stop(purge=True)


if __name__ == "__main__":
    main()
