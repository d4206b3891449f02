"""Every output path of the engines, as one list of reward dicts in the order each path emits them, for tests
that state a property of all of them (revisions, duplicates): the Python and native backfill engines fed JSON
Lines, and the Python and native partition processors (the worker's step) fed Avro records."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import FILE_QUORUM, EngineConfig
from pipeline.engine.chunks import PythonBackfill
from pipeline.engine.partition import CONVERSIONS, RESERVED_PREFIX, TOUCHPOINTS, InputRecord, journey_codec
from pipeline.engine.partition.processor import PartitionProcessor
from pipeline.events.avro import AvroCodec, conversion_to_record, reward_from_record, touchpoint_to_record
from pipeline.events.jsonl import reward_to_json
from pipeline.events.parse import parse_event
from pipeline.events.types import Event, Touchpoint
from pipeline.native import NativeBackfill, NativePartitionProcessor

Reward = dict[str, Any]
_TP, _CV, _REWARDS = AvroCodec("touchpoint"), AvroCodec("conversion"), AvroCodec("attributed_reward")


def parsed(line: str) -> Event | None:
    """The event a line holds, None for a line no engine would accept as one."""
    try:
        return parse_event(orjson.loads(line))
    except Exception:
        return None


def backfill(engine: str, lines: Sequence[str], config: EngineConfig, now: int,
             learned: LearnedWeights | None = None) -> bytes:
    """The backfill's output (JSON Lines) of ``lines`` fed in one chunk through ``engine``."""
    runner = (PythonBackfill(config, learned, now) if engine == "python"
              else NativeBackfill(config, learned, now, FILE_QUORUM))
    data = "".join(line + "\n" for line in lines).encode()
    written, _, _ = runner.feed(data, 1, None, None)
    return bytes(written + runner.finish(None))


def records(lines: Sequence[str]) -> list[InputRecord]:
    """The accepted-looking lines as the worker reads them: Avro records keyed by user, ingested when dated."""
    out = []
    for offset, line in enumerate(lines):
        event = parsed(line)
        if event is None:
            continue
        if isinstance(event, Touchpoint):
            out.append(InputRecord(TOUCHPOINTS, offset, event.user_id.encode(),
                                   _TP.encode(touchpoint_to_record(event)), event.timestamp_ms))
        else:
            out.append(InputRecord(CONVERSIONS, offset, event.user_id.encode(),
                                   _CV.encode(conversion_to_record(event)), event.timestamp_ms))
    return out


def partition(engine: str, recs: Sequence[InputRecord], config: EngineConfig, now: int, batch: int,
              learned: LearnedWeights | None = None) -> tuple[list[Reward], dict[bytes, bytes]]:
    """The rewards a partition processor publishes for ``recs`` in batches of ``batch`` records (then every input
    idle and the wall clock at ``now``), in the order its outboxes hold them, and the table it leaves."""
    make: Callable[..., Any] = PartitionProcessor if engine == "python" else NativePartitionProcessor
    proc = make(0, config, learned)
    table: dict[bytes, bytes] = {}
    rewards: list[Reward] = []

    def load(keys: list[bytes]) -> list[bytes | None]:
        return [table.get(k) for k in keys]

    def take(out: Any) -> None:
        for key, value in out.writes:
            if value is None:
                table.pop(key, None)
                continue
            table[key] = value
            if not key.startswith(RESERVED_PREFIX):
                rewards.extend(reward_to_json(reward_from_record(_REWARDS.decode(r)))
                               for r in journey_codec.outbox(value))

    for at in range(0, len(recs), batch):
        take(proc.process(list(recs[at:at + batch]), load))
    for _ in range(3):
        take(proc.advance(load, (TOUCHPOINTS, CONVERSIONS), now))
    # an outbox is published and emptied by the worker; what stays is the journey and the clock
    return rewards, {k: v if k.startswith(RESERVED_PREFIX) else journey_codec.without_outbox(v)
                     for k, v in table.items()}


def with_duplicates(lines: Sequence[str], rng: random.Random, lateness_ms: int, fraction: float = 0.3) -> list[str]:
    """``lines`` with a copy of about ``fraction`` of the events placed later, as an at-least-once delivery or a
    replay would: each copy goes among the next few lines, but never after a line dated more than the allowed
    lateness past it (the copy is then still a duplicate of a journey's event, not a late event)."""
    events = [parsed(line) for line in lines]
    times = [None if e is None else e.timestamp_ms for e in events]
    # Only events whose id the log does not reuse: where one id stands for two events, a copy of the second
    # may arrive once the first is forgotten and be news (as a replay of that line would be), which is the
    # ids' business, not the clock's.
    ids = Counter(_key(e) for e in events if e is not None)
    later: dict[int, list[str]] = {}
    for i, line in enumerate(lines):
        t, event = times[i], events[i]
        if t is None or event is None or ids[_key(event)] > 1 or rng.random() >= fraction:
            continue
        j = i + 1
        while j < len(lines) and j < i + 8 and (times[j] is None or times[j] <= t + lateness_ms) and rng.random() < 0.7:
            j += 1
        later.setdefault(j, []).append(line)
    out: list[str] = []
    for i, line in enumerate(lines):
        out.extend(later.get(i, ()))
        out.append(line)
    out.extend(later.get(len(lines), ()))
    return out


def _key(event: Event) -> tuple[str, str]:
    return event.user_id, event.touchpoint_id if isinstance(event, Touchpoint) else event.conversion_id


def as_dicts(jsonl: bytes) -> list[Reward]:
    return [orjson.loads(line) for line in jsonl.splitlines() if line.strip()]
