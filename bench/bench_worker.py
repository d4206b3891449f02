"""Streaming worker benchmark on the real broker (one worker process).

Prints: sustained input events/s through the worker (touchpoints + conversions, measured between the first
and the last event it processed); a plain confluent-kafka consume→produce pass-through of the same records in
the same run, and the ratio; latency from producing a conversion to its attributed rewards being readable
(p50/p99) at about half the measured rate; worker RSS and on-disk state size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import orjson

from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Touchpoint
from pipeline.kafka import consumer_config, ensure_topics, producer_config
from pipeline.local_kafka import LocalKafka
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.stream.worker_process import WorkerProcess
from pipeline.synthetic import LogSpec, generate, write_engine_config


def passthrough(settings: Settings, total: int) -> float:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(consumer_config(settings, f"bench-pass-{uuid.uuid4().hex[:6]}"))
    consumer.subscribe([settings.topic_touchpoints, settings.topic_conversions])
    producer = Producer(producer_config(settings))
    out = settings.topic_rewards + ".passthrough"
    ensure_topics(settings, [out])
    n = 0
    start = None
    while n < total:
        for msg in consumer.consume(5000, 1.0):
            if msg.error():
                continue
            start = start or time.perf_counter()
            while True:
                try:
                    producer.produce(out, key=msg.key(), value=msg.value())
                    break
                except BufferError:
                    producer.poll(0.01)
            n += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    assert start is not None
    return n / (time.perf_counter() - start)


def rss_kb(pid: int) -> int:
    total = 0
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)], capture_output=True, text=True)
    for line in out.stdout.split():
        total += int(line)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    args = ap.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP") or LocalKafka().start()[0].bootstrap
    assert bootstrap
    tag = uuid.uuid4().hex[:8]
    settings = Settings(bootstrap_servers=bootstrap, app_id=f"bench-{tag}",
                        topic_touchpoints=f"bench.{tag}.touchpoints", topic_conversions=f"bench.{tag}.conversions",
                        topic_rewards=f"bench.{tag}.rewards", topic_dead_letters=f"bench.{tag}.dead-letters")
    ensure_topics(settings)
    events = [parse_event(orjson.loads(line)) for line in generate(LogSpec(users=args.users, seed=21))]
    producer = EventProducer(settings)
    for ev in events:
        producer.send(ev)
    producer.close()
    total = len(events)
    print(f"worker benchmark: {total:,} events preloaded on {settings.partitions} partitions")

    pass_rate = passthrough(settings, total)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = write_engine_config(tmp / "c.toml", max_future_skew_hours=24 * 60)
        worker = WorkerProcess(settings, config, tmp, "bench").start()
        try:
            first = last = None
            seen = 0
            deadline = time.monotonic() + 900
            while seen < total and time.monotonic() < deadline:
                stats = worker.stats() or {}
                seen = stats.get("events_in", 0)
                now = time.perf_counter()
                if seen and first is None:
                    first = (now, seen)
                last = (now, seen)
                time.sleep(0.2)
            assert first and last and last[1] > first[1], worker.tail()
            rate = (last[1] - first[1]) / (last[0] - first[0])
            print(f"{'worker, sustained':<34} {rate:>10,.0f} events/s")
            print(f"{'confluent-kafka pass-through':<34} {pass_rate:>10,.0f} events/s")
            print(f"{'ratio worker / pass-through':<34} {rate / pass_rate:>10.3f}")

            latencies = measure_latency(settings, events, rate / 2, args.latency_seconds)
            if latencies:
                q = statistics.quantiles(latencies, n=100)
                print(f"{'conversion → rewards readable':<34} p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms "
                      f"({len(latencies)} conversions at {rate / 2:,.0f} events/s offered)")
            assert worker.proc is not None
            print(f"{'worker RSS':<34} {rss_kb(worker.proc.pid) / 1024:>10,.0f} MiB "
                  f"({(worker.stats() or {}).get('pending_touchpoints', 0):,} open touchpoints)")
            du = subprocess.run(["du", "-sk", str(worker.datadir)], capture_output=True, text=True).stdout.split()
            print(f"{'on-disk state (RocksDB)':<34} {int(du[0]) / 1024:>10,.1f} MiB")
        finally:
            worker.stop()


def measure_latency(settings: Settings, events: list[Touchpoint | Conversion], offered: float,
                    seconds: float) -> list[float]:
    """Touchpoint then conversion for fresh users, at ``offered`` events/s; time each conversion until its
    attribution is on the rewards topic."""
    from confluent_kafka import Consumer, TopicPartition

    newest = max(e.timestamp_ms for e in events)
    consumer = Consumer(consumer_config(settings, f"bench-lat-{uuid.uuid4().hex[:6]}"))
    parts = [TopicPartition(settings.topic_rewards, p, -1) for p in range(settings.partitions)]  # OFFSET_END
    consumer.assign(parts)
    codec = AvroCodec("attributed_reward")
    producer = EventProducer(settings, **{"linger.ms": 0})
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    interval = 2.0 / max(offered, 1.0)  # two events per pair
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        user = f"lat-{uuid.uuid4().hex[:10]}"
        t = newest + i
        producer.send(Touchpoint(f"{user}-t", "lat", user, "c", "search", t, 0.0))
        producer.send(Conversion(f"{user}-c", user, "purchase", Decimal("1.00"), "USD", t + 1))
        producer.flush(5)
        sent[f"{user}-c"] = time.monotonic()
        i += 2
        for msg in consumer.consume(500, 0):
            if not msg.error() and msg.value() is not None:
                r = reward_from_record(codec.decode(msg.value()))
                if r.conversion_id in sent and r.conversion_id not in got:
                    got[r.conversion_id] = time.monotonic()
        time.sleep(max(0.0, interval - 0.0005))
    end = time.monotonic() + 15
    while len(got) < len(sent) and time.monotonic() < end:
        for msg in consumer.consume(500, 0.2):
            if not msg.error() and msg.value() is not None:
                r = reward_from_record(codec.decode(msg.value()))
                if r.conversion_id in sent and r.conversion_id not in got:
                    got[r.conversion_id] = time.monotonic()
    consumer.close()
    producer.close()
    return [got[c] - sent[c] for c in got]


if __name__ == "__main__":
    main()
