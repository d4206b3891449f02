"""``rewardstream demo``: the pipeline end to end on a local broker, as far as it is built today.

A generated multi-day event log (with late touchpoints, refunds, duplicates and garbage) is validated,
Avro-encoded and produced to the touchpoint and conversion topics keyed by user_id; read back from Kafka
partition by partition; attributed under every model; and checked against the batch backfill of the same
file. The Faust streaming worker (issue 7) will replace the read-back step with continuous processing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from pipeline.attribution.fitting import completed_journeys, fit
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.money import from_minor
from pipeline.backfill import run_backfill
from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.events.avro import (
    AvroCodec,
    conversion_from_record,
    conversion_to_record,
    touchpoint_from_record,
    touchpoint_to_record,
)
from pipeline.events.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import MODEL_NAMES, AttributedReward, Event, RewardKind, Touchpoint
from pipeline.kafka import admin_client, consumer_config, ensure_topics, producer_config
from pipeline.local_kafka import LocalKafka, LocalKafkaError
from pipeline.settings import Settings
from pipeline.synthetic import BAD_LINES, LogSpec, engine_config_table, generate


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the pipeline end to end on a local Kafka broker")
    p.add_argument("--users", type=int, default=20000, help="simulated users (default 20000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting the local broker")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics at the end")
    p.set_defaults(handler=run)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _produce(settings: Settings, events: list[Event]) -> None:
    from confluent_kafka import Producer

    producer = Producer(producer_config(settings))
    tp_codec, cv_codec = AvroCodec("touchpoint"), AvroCodec("conversion")
    failures: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for ev in events:
        if isinstance(ev, Touchpoint):
            topic, value = settings.topic_touchpoints, tp_codec.encode(touchpoint_to_record(ev))
        else:
            topic, value = settings.topic_conversions, cv_codec.encode(conversion_to_record(ev))
        while True:
            try:
                # No record timestamp: event time travels in the payload. Historical CreateTimes would be
                # refused by Kafka 4.x (message.timestamp.*.max.ms) and expired at once by retention.
                producer.produce(topic, key=ev.user_id.encode(), value=value, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) != 0 or failures:
        raise RuntimeError(f"the broker did not acknowledge every event: {failures[:3]}")


def _read_back(settings: Settings, expected: int) -> dict[int, list[tuple[int, Event]]]:
    """Every record of both topics, per partition, in offset order per topic."""
    from confluent_kafka import Consumer

    consumer = Consumer(consumer_config(settings, f"demo-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.topic_touchpoints, settings.topic_conversions])
    tp_codec, cv_codec = AvroCodec("touchpoint"), AvroCodec("conversion")
    per_partition: dict[int, list[tuple[int, Event]]] = defaultdict(list)
    got = 0
    deadline = time.monotonic() + 120
    while got < expected and time.monotonic() < deadline:
        for msg in consumer.consume(2000, 1.0):
            value, partition = msg.value(), msg.partition()
            if msg.error() or value is None or partition is None:
                continue
            if msg.topic() == settings.topic_touchpoints:
                ev: Event = touchpoint_from_record(tp_codec.decode(value))
            else:
                ev = conversion_from_record(cv_codec.decode(value))
            assert msg.key() == ev.user_id.encode()
            per_partition[partition].append((ev.timestamp_ms, ev))
            got += 1
    consumer.close()
    if got < expected:
        raise RuntimeError(f"read back only {got} of {expected} events within 120 s")
    return per_partition


def _attribute(per_partition: dict[int, list[tuple[int, Event]]], config: EngineConfig,
               learned: LearnedWeights) -> list[AttributedReward]:
    """One engine per partition, as a worker owns partitions; events merged by event time, stably."""
    rewards: list[AttributedReward] = []
    for _, events in sorted(per_partition.items()):
        engine = AttributionEngine(config, learned)
        for _, ev in sorted(events, key=lambda x: x[0]):
            with contextlib.suppress(InvalidEvent):
                rewards.extend(engine.process(ev))
        rewards.extend(engine.flush())
    return rewards


def _facts(rewards: list[AttributedReward]) -> tuple[dict[tuple[str | None, str], int], dict[str, int]]:
    latest: dict[tuple[str | None, str], tuple[int, int]] = {}
    finals: dict[str, int] = {}
    for r in rewards:
        if r.kind is RewardKind.FINAL:
            finals[r.touchpoint_id] = r.amount_minor
            continue
        key = (r.conversion_id, r.touchpoint_id)
        if key not in latest or r.revision > latest[key][0]:
            latest[key] = (r.revision, r.amount_minor)
    return {k: v for k, (_, v) in latest.items()}, finals


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    bootstrap = args.bootstrap or os.environ.get("REWARDSTREAM_BOOTSTRAP_SERVERS")
    if not bootstrap:
        try:
            status, started_now = LocalKafka().start()
        except LocalKafkaError as exc:
            print(f"demo: could not start the local Kafka broker: {exc}", file=sys.stderr)
            return 2
        bootstrap = status.bootstrap
        _say(f"kafka: {'started' if started_now else 'already running'} at {bootstrap}")
    assert bootstrap
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(bootstrap_servers=bootstrap,
                        topic_touchpoints=f"rewardstream.demo.{run_id}.touchpoints",
                        topic_conversions=f"rewardstream.demo.{run_id}.conversions",
                        topic_rewards=f"rewardstream.demo.{run_id}.rewards",
                        topic_dead_letters=f"rewardstream.demo.{run_id}.dead-letters")
    ensure_topics(settings, [settings.topic_touchpoints, settings.topic_conversions])
    config = EngineConfig.from_mapping(engine_config_table())

    lines = generate(LogSpec(users=args.users, seed=args.seed, bad_lines=len(BAD_LINES)))
    log_path = out / "events.jsonl"
    log_path.write_text("\n".join(lines) + "\n")
    _say(f"generated {len(lines):,} events for {args.users:,} users over 30 days -> {log_path}")

    events: list[Event] = []
    refused = 0
    for line in lines:
        try:
            events.append(parse_event(orjson.loads(line)))
        except (orjson.JSONDecodeError, InvalidEvent):
            refused += 1
    t = time.perf_counter()
    _produce(settings, events)
    _say(f"produced {len(events):,} events to Kafka in {time.perf_counter() - t:.1f}s "
         f"(Avro, keyed by user_id, murmur2); refused {refused} bad lines at the producer")
    t = time.perf_counter()
    per_partition = _read_back(settings, len(events))
    _say(f"read {len(events):,} events back from {len(per_partition)} partitions in {time.perf_counter() - t:.1f}s")

    learned = fit(completed_journeys(events, config.window_for), config.min_journeys)
    weights_path = out / "attribution-weights.json"
    weights_path.write_text(json.dumps(learned.to_json(), indent=2) + "\n")
    _say(f"fitted data_driven/shapley weights from {learned.journeys:,} completed journeys -> {weights_path}")
    rewards_path = out / "rewards.jsonl"
    summary = run_backfill(log_path, rewards_path, config, progress=False)
    backfill_rewards = [_parse_reward(line) for line in rewards_path.read_bytes().splitlines()]
    per_model: dict[str, dict[str, int]] = {}
    for model in MODEL_NAMES:
        cfg = dataclasses.replace(config, default_model=model)
        rewards = _attribute(per_partition, cfg, learned)
        if model == config.default_model:
            same = _facts(rewards) == _facts(backfill_rewards)
            _say(f"stream read-back attributed per partition equals the backfill ({model}): {'yes' if same else 'NO'}")
            if not same:
                return 1
        totals: dict[str, int] = defaultdict(int)
        for r in rewards:
            if r.kind is not RewardKind.FINAL:
                totals[r.channel] += r.amount_minor if r.revision == 0 else 0
        per_model[model] = dict(totals)

    channels = sorted({c for t in per_model.values() for c in t})
    base = config.rates.base
    _say(f"\nattributed value per channel ({base}, net of refunds)")
    _say(f"{'model':<16}" + "".join(f"{c:>12}" for c in channels))
    for model, totals in per_model.items():
        _say(f"{model:<16}" + "".join(f"{from_minor(totals.get(c, 0), base):>12,.2f}" for c in channels))
    _say("")
    for line in summary.lines():
        _say(line)
    _say(f"rewards: {rewards_path}\nrejected lines with reasons: {out / 'rewards.rejected.jsonl'}")
    if not args.keep_topics:
        admin_client(settings).delete_topics([settings.topic_touchpoints, settings.topic_conversions])
    _say(f"demo finished in {time.perf_counter() - started:.0f}s; output in {out.resolve()}")
    return 0 if summary.rewards_out else 1


def _parse_reward(line: bytes) -> AttributedReward:
    from pipeline.events.jsonl import reward_from_json

    return reward_from_json(orjson.loads(line))

