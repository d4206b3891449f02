"""The HTTP conversion ingest (``rewardstream ingest serve``) under load from a second process on loopback.

Phases:

rate     closed-loop clients (each posts one conversion, waits for the answer, posts the next) at rising
         concurrency, ``--seconds`` each: requests/s and latency percentiles; the figure is the highest rate
         whose p99 is at most ``--p99-ms`` (50 ms).
restart  the same load while the broker is stopped and started again (same port): how many requests were
         answered 202, 503 or not at all, and how many 202s are missing from the topic (the target is 0).

The server runs as its own process (the console script), the clients here; the broker is a throwaway instance
of its own unless ``KAFKA_BOOTSTRAP`` names one (then the restart phase is skipped: it is not ours to stop).
The load client (:func:`post_load`) and the server fixture (:class:`IngestServer`) are shared with the
integration test that counts the 202s (tests/integration/test_ingest_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
import orjson

from pipeline.local_kafka import LocalKafka
from pipeline.ports import free_port
from pipeline.settings import Settings

TOKEN = "bench-ingest-token"
T0 = 1_767_225_600_000


def conversion(prefix: str, n: int) -> bytes:
    return orjson.dumps({"conversion_id": f"{prefix}-{n}", "user_id": f"u{n % 997}", "event": "purchase",
                         "value": "19.99", "currency": "USD", "timestamp": T0 + n})


@dataclass
class Load:
    """What the clients saw: each answer's status (0: no answer, the connection failed or timed out), each
    answer's latency, and the conversion ids answered 202."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def post_load(url: str, seconds: float, concurrency: int, prefix: str | None = None,
                    timeout_s: float = 120.0) -> Load:
    """``concurrency`` closed-loop clients posting one conversion each request for ``seconds``."""
    prefix = prefix or uuid.uuid4().hex[:8]
    load = Load()
    counter = iter(range(1 << 62))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=limits, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                n = next(counter)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=conversion(prefix, n), headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                load.latencies_ms.append((time.perf_counter() - started) * 1000)
                load.statuses[status] += 1
                if status == 202:
                    load.accepted.append(f"{prefix}-{n}")

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        load.seconds = time.perf_counter() - began
    return load


class IngestServer:
    """``rewardstream ingest serve`` in a process of its own, ready when /health answers."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/conversions"
        env = {**os.environ, "REWARDSTREAM_INGEST_TOKEN": TOKEN,
               "REWARDSTREAM_TOPIC_CONVERSIONS": settings.topic_conversions,
               "REWARDSTREAM_TOPIC_TOUCHPOINTS": settings.topic_touchpoints,
               "REWARDSTREAM_TOPIC_REWARDS": settings.topic_rewards,
               "REWARDSTREAM_TOPIC_DEAD_LETTERS": settings.topic_dead_letters}
        script = Path(sys.executable).with_name("rewardstream")
        self._log = open(log, "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen([str(script), "ingest", "serve", "--port", str(self.port),
                                      "--bootstrap", settings.bootstrap_servers],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> IngestServer:
        deadline = time.monotonic() + 60
        health = self.url.replace("/conversions", "/health")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ingest serve exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                import urllib.request

                with urllib.request.urlopen(health, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            time.sleep(0.2)
        raise RuntimeError("ingest serve did not answer /health within 60 s")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def topic_ids(settings: Settings, expect: set[str], timeout: float = 60.0) -> Counter[str]:
    """The conversion ids on the topic, each with how often it is there; reads until ``expect`` are all seen
    and the topic has been quiet for 3 s, or ``timeout``."""
    from confluent_kafka import Consumer

    from pipeline.events.avro import AvroCodec, conversion_from_record
    from pipeline.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, f"bench-ingest-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.topic_conversions])
    codec = AvroCodec("conversion")
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        msgs = [m for m in consumer.consume(5000, 0.5) if not m.error()]
        for m in msgs:
            value = m.value()
            if value is not None:
                seen[conversion_from_record(codec.decode(value)).conversion_id] += 1
        if msgs:
            quiet_since = time.monotonic()
        elif expect <= seen.keys() and time.monotonic() - quiet_since > 3:
            break
    consumer.close()
    return seen


async def load_through_restart(broker: LocalKafka, url: str, concurrency: int, before_s: float,
                               down_s: float, after_s: float) -> Load:
    """Load for ``before_s`` + the broker's stop, ``down_s`` stopped, its start + ``after_s``."""

    async def outage() -> None:
        await asyncio.sleep(before_s)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(down_s)
        status, started = await asyncio.to_thread(broker.start)
        assert started and status.bootstrap, status

    task = asyncio.create_task(outage())
    loads: list[Load] = []
    while not task.done():  # keep loading until the broker is back, then a little longer
        loads.append(await post_load(url, 2.0, concurrency, timeout_s=600))
    await task
    loads.append(await post_load(url, after_s, concurrency, timeout_s=600))
    total = Load()
    for part in loads:
        total.statuses += part.statuses
        total.latencies_ms += part.latencies_ms
        total.accepted += part.accepted
        total.seconds += part.seconds
    return total


@contextlib.contextmanager
def broker_of_our_own() -> Iterator[tuple[LocalKafka | None, str]]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield None, os.environ["KAFKA_BOOTSTRAP"]
        return
    broker = LocalKafka(instance=f"bench-ingest-{os.getpid()}", port=free_port())
    status, _ = broker.start()
    assert status.bootstrap
    try:
        yield broker, status.bootstrap
    finally:
        broker.stop(purge=True)


def fresh_settings(bootstrap: str) -> Settings:
    from pipeline.kafka import ensure_topics

    tag = uuid.uuid4().hex[:8]
    s = Settings(bootstrap_servers=bootstrap, topic_touchpoints=f"bench.{tag}.touchpoints",
                 topic_conversions=f"bench.{tag}.conversions", topic_rewards=f"bench.{tag}.rewards",
                 topic_dead_letters=f"bench.{tag}.dead-letters")
    ensure_topics(s)
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="load per concurrency level")
    ap.add_argument("--concurrency", default="1,2,4,8,16,32", help="comma-separated client counts")
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--phases", default="rate,restart")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    print("ingest: POST /conversions, one conversion a request, closed-loop clients on loopback", flush=True)
    with broker_of_our_own() as (broker, bootstrap), contextlib.ExitStack() as stack:
        settings = fresh_settings(bootstrap)
        log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "ingest.log"
        server = stack.enter_context(IngestServer(settings, log))
        best = None
        if "rate" in phases:
            print(f"  {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses", flush=True)
            for c in (int(x) for x in args.concurrency.split(",")):
                load = asyncio.run(post_load(server.url, args.seconds, c))
                rate = load.requests / load.seconds
                p99 = load.percentile(99)
                print(f"  {c:>7} {rate:>9.0f} {load.percentile(50):>8.1f} {p99:>8.1f} "
                      f"{max(load.latencies_ms):>8.1f}  {dict(load.statuses)}", flush=True)
                if p99 <= args.p99_ms and load.statuses.keys() == {202} and (best is None or rate > best[0]):
                    best = (rate, c, p99)
            if best:
                print(f"  highest rate with p99 <= {args.p99_ms:g} ms: {best[0]:,.0f} requests/s "
                      f"({best[1]} clients, p99 {best[2]:.1f} ms)", flush=True)
        if "restart" in phases and broker is not None:
            load = asyncio.run(load_through_restart(broker, server.url, 8, 5.0, 10.0, 5.0))
            on_topic = topic_ids(settings, set(load.accepted), timeout=120)
            lost = [i for i in load.accepted if i not in on_topic]
            doubled = sum(1 for i in load.accepted if on_topic[i] > 1)
            print(f"  broker restart under 8 clients: {load.requests:,} requests, statuses {dict(load.statuses)}, "
                  f"202s lost {len(lost)}, 202s on the topic twice {doubled}, longest answer "
                  f"{max(load.latencies_ms) / 1000:.1f} s", flush=True)


if __name__ == "__main__":
    main()
