"""The streaming worker against the real broker: its output equals the backfill's, through crashes,
lost local state and rebalances; poison records go to the dead-letter topic with reasons."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from pipeline.cli.worker_cmd import RUNTIMES
from pipeline.events.avro import AvroCodec, conversion_to_record, touchpoint_to_record
from pipeline.events.parse import parse_event
from pipeline.events.types import Conversion, Touchpoint
from pipeline.producers import EventProducer
from pipeline.settings import Settings
from pipeline.synthetic import LogSpec, generate
from tests.integration.stream_harness import (
    RewardReader,
    Worker,
    assert_equal,
    generated_log,
    is_sentinel,
    make_settings,
    produce_lines,
    replaying,
    run_until_complete,
    wait_for,
    write_config,
)


def listening_hosts(port: int) -> set[str]:
    """Addresses with a socket listening on ``port`` (IPv4, from /proc/net/tcp)."""
    hosts = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:
            hosts.add(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return hosts


@pytest.fixture(params=RUNTIMES)
def stream_env(kafka_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Settings, Path]:
    """Every stream test runs on both runtimes."""
    settings = make_settings(kafka_settings.with_overrides(runtime=request.param), f"rs-test-{uuid.uuid4().hex[:8]}")
    return settings, write_config(tmp_path / "rewardstream.toml")


@pytest.mark.timeout(600)
def test_stream_equals_backfill(stream_env: tuple[Settings, Path], tmp_path: Path) -> None:
    """No closing events: when the worker has read everything and its inputs are silent, the wall clock (with
    the default maximum event delay) closes every window of the months-old log, as the backfill's end does."""
    settings, config = stream_env
    lines, expected = generated_log(settings, tmp_path, config, users=6000, seed=11, closing=False)
    assert len(lines) >= 50_000
    assert any(t for t in expected.finals.values()) and expected.unattributed
    produce_lines(settings, lines)
    worker = Worker(settings, config, tmp_path, "w1").start()
    reader = RewardReader(settings)
    try:
        got = run_until_complete(reader, expected, [worker], timeout=420)
        assert_equal(got, expected)
        stats = worker.stats()
        assert stats is not None and stats["rejected"] == 0 and stats["duplicates"] > 0
        user = next(r["user_id"] for r in reversed(reader.records) if not is_sentinel(r["user_id"]))
        status, _ = worker.get(f"/journeys/{user}/")
        assert status in (200, 404)
        status, body = worker.get("/metrics/")
        assert status == 200 and b"rewardstream_events_in_total" in body
    finally:
        reader.close()
        worker.stop()


@pytest.mark.timeout(600)
def test_crash_and_lost_local_state_lose_and_double_pay_nothing(stream_env: tuple[Settings, Path],
                                                                 tmp_path: Path) -> None:
    settings, config = stream_env
    settings = replaying(settings)
    lines, expected = generated_log(settings, tmp_path, config, users=3000, seed=12)
    half = len(lines) // 2
    produce_lines(settings, lines[:half])
    worker = Worker(settings, config, tmp_path, "w1").start()
    reader = RewardReader(settings)
    try:
        wait_for(lambda: (worker.stats() or {}).get("events_in", 0) > half // 3, 180, "progress", worker.tail)
        worker.kill()
        worker.start()  # same state directory: the unclean stop is detected, state comes from the changelog
        produce_lines(settings, lines[half:])
        wait_for(lambda: (worker.stats() or {}).get("events_in", 0) > half // 3, 180, "progress", worker.tail)
        worker.kill()
        worker.wipe_state()  # state must come back from the changelog alone
        worker.start()
        got = run_until_complete(reader, expected, [worker], timeout=420)
        assert_equal(got, expected)
    finally:
        reader.close()
        worker.stop()


@pytest.mark.timeout(600)
def test_rebalance_adds_and_removes_workers(stream_env: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, config = stream_env
    settings = replaying(settings)
    lines, expected = generated_log(settings, tmp_path, config, users=3000, seed=13)
    third = len(lines) // 3
    produce_lines(settings, lines[:third])
    w1 = Worker(settings, config, tmp_path, "w1").start()
    workers = [w1]
    reader = RewardReader(settings)
    try:
        wait_for(lambda: (w1.stats() or {}).get("events_in", 0) > third // 3, 180, "progress", w1.tail)
        workers += [Worker(settings, config, tmp_path, "w2").start(), Worker(settings, config, tmp_path, "w3").start()]
        produce_lines(settings, lines[third:2 * third])
        wait_for(lambda: all(w.stats() for w in workers), 120, "three workers serving")
        wait_for(lambda: sum(len((w.stats() or {}).get("partitions", [])) > 0 for w in workers) == 3, 120,
                 "partitions spread over three workers", lambda: "\n".join(w.tail() for w in workers))
        workers[1].stop()
        produce_lines(settings, lines[2 * third:])
        got = run_until_complete(reader, expected, workers, timeout=420)
        assert_equal(got, expected)
        # /journeys/{user} is routed to the owner: every live worker answers the same for any user
        live = [w for w in workers if w.alive()]
        assert len(live) == 2
        # (conversions older than the refund retention are forgotten by now, so some users answer 404)
        users = sorted({r["user_id"] for r in reader.records if r["kind"] == "attribution"
                        and not is_sentinel(r["user_id"])})[-60:]
        found = 0
        for user in users:
            answers = [w.get(f"/journeys/{user}/") for w in live]
            assert answers[0][0] == answers[1][0] and answers[0][0] in (200, 404), (user, answers)
            bodies = [orjson.loads(body) for _, body in answers]
            assert bodies[0] == bodies[1], user
            found += answers[0][0] == 200 and bool(bodies[0]["conversions"])
        assert found >= 5, f"only {found} of {len(users)} recent converters still have a journey"
    finally:
        reader.close()
        for w in workers:
            w.stop()


def test_poison_records_go_to_the_dead_letter_topic_with_reasons(stream_env: tuple[Settings, Path],
                                                                  tmp_path: Path) -> None:
    from confluent_kafka import Consumer

    from pipeline.kafka import consumer_config

    settings, config = stream_env
    good = generate(LogSpec(users=200, seed=14))
    producer = EventProducer(settings)
    tp_codec, cv_codec = AvroCodec("touchpoint"), AvroCodec("conversion")
    tp = Touchpoint("p-tp", "e", "poison-user", "c", "search", 1767225600000, 0.0)
    conv = Conversion("p-cv", "poison-user", "purchase", Decimal("10"), "USD", 1767225600000)
    poison = {
        "bad bytes": (settings.topic_touchpoints, b"poison-user", b"\x00\x01garbage"),
        "wrong schema": (settings.topic_conversions, b"poison-user", tp_codec.encode(touchpoint_to_record(tp))),
        "unknown currency": (settings.topic_conversions, b"poison-user",
                             cv_codec.encode({**conversion_to_record(conv), "currency": "XYZ"})),
        "negative value": (settings.topic_conversions, b"poison-user",
                           cv_codec.encode({**conversion_to_record(conv), "value_minor": -5})),
        "key is not the user": (settings.topic_touchpoints, b"someone-else",
                                tp_codec.encode(touchpoint_to_record(tp))),
        "tombstone": (settings.topic_touchpoints, b"poison-user", None),
        # each of these once crashed the touchpoint agent or went into state unchecked
        "a megabyte of noise": (settings.topic_touchpoints, b"poison-user", b"\xc3\x01" + os.urandom(990_000)),
        "state is not JSON": (settings.topic_touchpoints, b"poison-user",
                              tp_codec.encode({**touchpoint_to_record(tp), "state": "{not json"})),
        "empty user and key": (settings.topic_touchpoints, b"",
                               tp_codec.encode({**touchpoint_to_record(tp), "user_id": ""})),
        "300 KB touchpoint id": (settings.topic_touchpoints, b"poison-user",
                                 tp_codec.encode({**touchpoint_to_record(tp), "touchpoint_id": "x" * 300_000})),
        "NaN reward": (settings.topic_touchpoints, b"poison-user",
                       tp_codec.encode({**touchpoint_to_record(tp), "immediate_reward": float("nan")})),
        "absurd reward": (settings.topic_touchpoints, b"poison-user",
                          tp_codec.encode({**touchpoint_to_record(tp), "immediate_reward": 1e300})),
    }
    for i, line in enumerate(good):
        producer.send(parse_event(orjson.loads(line)))
        if i == len(good) // 2:
            for topic, key, value in poison.values():
                producer.send_raw(topic, key, value)
    producer.close()
    worker = Worker(settings.with_overrides(web_token="w3b-s3cret"), config, tmp_path, "w1").start()
    try:
        wait_for(lambda: (worker.stats() or {}).get("dead_letters", 0) >= len(poison), 180, "dead letters",
                 worker.tail)
        # the views: loopback only by default, and behind the token when one is set (/health/ stays open)
        assert listening_hosts(worker.port) == {"127.0.0.1"}
        assert [worker.get(p, token="")[0] for p in ("/stats/", "/metrics/", "/journeys/poison-user/")] == [401] * 3
        assert worker.get("/journeys/poison-user/", token="wrong")[0] == 401
        assert worker.get("/health/", token="")[0] == 200
        stats = worker.stats()
        assert stats is not None and stats["conversions_attributed"] > 0
        consumer = Consumer(consumer_config(settings, "dl-reader"))
        consumer.subscribe([settings.topic_dead_letters])
        codec = AvroCodec("dead_letter")
        letters = []
        for _ in range(40):
            letters += [codec.decode(m.value()) for m in consumer.consume(100, 0.5) if not m.error()]
            if len(letters) >= len(poison):
                break
        consumer.close()
        assert len(letters) == len(poison)
        reasons = " | ".join(f"{d['field']}: {d['reason']}" for d in letters)
        for needle in ("header", "expected a conversion", "XYZ", "negative", "user_id", "tombstone",
                       "truncated", "state: not valid JSON", "touchpoint_id", "immediate_reward"):
            assert needle in reasons, f"no dead letter mentions {needle!r}: {reasons}"
        assert worker.alive()
        assert all(d["source_topic"] in {settings.topic_touchpoints, settings.topic_conversions} for d in letters)
        assert all(d["source_offset"] >= 0 for d in letters)
    finally:
        worker.stop()


def test_worker_refuses_to_start_when_partition_counts_disagree(kafka_settings: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    from pipeline.kafka import ensure_topics

    ensure_topics(kafka_settings, [kafka_settings.topic_touchpoints, kafka_settings.topic_rewards,
                                   kafka_settings.topic_dead_letters])
    ensure_topics(kafka_settings.with_overrides(partitions=3), [kafka_settings.topic_conversions])
    worker = Worker(kafka_settings, write_config(tmp_path / "c.toml"), tmp_path, "w")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "worker", "--config", str(worker.config)],
                            env=worker.env(), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "partition counts disagree" in result.stderr and "co-partition" in result.stderr
