"""Helpers for tests that run real worker processes against the real broker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from pipeline.engine import DAY_MS, HOUR_MS
from pipeline.events.avro import AvroCodec, reward_from_record
from pipeline.events.jsonl import reward_to_json
from pipeline.events.parse import parse_event
from pipeline.kafka import consumer_config, ensure_topics
from pipeline.kafka.event_producer import EventProducer
from pipeline.local_kafka.broker import _free_port
from pipeline.settings import Settings
from pipeline.synthetic import engine_config_table

Facts = tuple[dict[tuple[str, str], int], dict[str, int]]


def write_config(path: Path) -> Path:
    """The synthetic logs' attribution settings, with a future skew wide enough for the sentinels."""
    table = {**engine_config_table(), "max_future_skew_hours": 24 * 60}
    lines = ["[attribution]"]
    for key, value in table.items():
        if isinstance(value, dict):
            inner = ", ".join(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def user_for_partition(partition: int, partitions: int, prefix: str = "sentinel") -> str:
    """A user id whose key hashes (murmur2, as every project client does) to ``partition``."""
    i = 0
    while True:
        user = f"{prefix}-{partition}-{i}"
        if (murmur2(user.encode()) & 0x7FFFFFFF) % partitions == partition:
            return user
        i += 1


def sentinels(lines: list[str], partitions: int) -> list[str]:
    """One touchpoint and one conversion per partition, far enough after the log that every window in it
    closes: the stream then finalises what the backfill finalises at end of input."""
    newest = max(orjson.loads(line)["timestamp"] for line in lines if line.startswith("{\"type\""))
    t = newest + 8 * DAY_MS + 2 * HOUR_MS
    out = []
    for p in range(partitions):
        user = user_for_partition(p, partitions)
        out.append(orjson.dumps({"type": "touchpoint", "touchpoint_id": f"{user}-tp", "episode_id": "sentinel",
                                 "user_id": user, "campaign_id": "sentinel", "channel": "search",
                                 "timestamp": t, "immediate_reward": 0.0}).decode())
        out.append(orjson.dumps({"type": "conversion", "conversion_id": f"{user}-cv", "user_id": user,
                                 "event": "lead", "value": "0", "currency": "USD", "timestamp": t}).decode())
    return out


def produce_lines(settings: Settings, lines: list[str]) -> int:
    producer = EventProducer(settings)
    n = 0
    for line in lines:
        try:
            producer.send(parse_event(orjson.loads(line)))
            n += 1
        except Exception:
            continue
    producer.flush()
    return n


class Worker:
    """A `rewardstream worker` subprocess with its own web port and state directory."""

    def __init__(self, settings: Settings, config: Path, workdir: Path, name: str) -> None:
        self.settings = settings
        self.config = config
        self.name = name
        self.datadir = workdir / f"{name}-data"
        self.log = workdir / f"{name}.log"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        return {**os.environ,
                "REWARDSTREAM_BOOTSTRAP_SERVERS": s.bootstrap_servers, "REWARDSTREAM_APP_ID": s.app_id,
                "REWARDSTREAM_TOPIC_TOUCHPOINTS": s.topic_touchpoints,
                "REWARDSTREAM_TOPIC_CONVERSIONS": s.topic_conversions,
                "REWARDSTREAM_TOPIC_REWARDS": s.topic_rewards,
                "REWARDSTREAM_TOPIC_DEAD_LETTERS": s.topic_dead_letters,
                "REWARDSTREAM_PARTITIONS": str(s.partitions), "REWARDSTREAM_IDLE_TIMEOUT_SECONDS": "5",
                "REWARDSTREAM_STANDBY_REPLICAS": "0",
                "REWARDSTREAM_DATADIR": str(self.datadir), "REWARDSTREAM_WEB_PORT": str(self.port)}

    def start(self) -> Worker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli.main", "worker", "--config", str(self.config)],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def stats(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats/", timeout=2) as resp:
                data = orjson.loads(resp.read())
                assert isinstance(data, dict)
                return data
        except Exception:
            return None

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no commit."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def wipe_state(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def make_settings(base: Settings, app_id: str) -> Settings:
    s = base.with_overrides(app_id=app_id)
    ensure_topics(s)
    return s


class RewardReader:
    """Reads the rewards topic (read_committed) and keeps every record, duplicates included."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer(consumer_config(settings, f"test-reader-{os.getpid()}-{time.monotonic_ns()}"))
        self.consumer.subscribe([settings.topic_rewards])
        self.codec = AvroCodec("attributed_reward")
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(5000, 0.5):
                value = msg.value()
                if msg.error() or value is None:
                    continue
                reward = reward_from_record(self.codec.decode(value))
                assert msg.key() == reward.user_id.encode(), "rewards are keyed by user_id"
                self.records.append(reward_to_json(reward))

    def close(self) -> None:
        self.consumer.close()


def facts(records: list[dict[str, Any]], skip_users: Callable[[str], bool] = lambda u: False) -> Facts:
    """Latest amount per (conversion, touchpoint), and each touchpoint's final, deduplicated by reward_id.
    Two different facts with one id, or two different finals for one touchpoint, fail the test."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["reward_id"] in by_id:
            assert by_id[r["reward_id"]] == r, f"one reward_id, two different facts: {r['reward_id']}"
        by_id[r["reward_id"]] = r
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    finals: dict[str, int] = {}
    for r in by_id.values():
        if skip_users(r["user_id"]):
            continue
        if r["kind"] == "final":
            finals[r["touchpoint_id"]] = r["amount_minor"]
            continue
        key = (r["conversion_id"], r["touchpoint_id"])
        if key not in latest or r["revision"] > latest[key][0]:
            latest[key] = (r["revision"], r["amount_minor"])
    return {k: v for k, (_, v) in latest.items()}, finals


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")
