"""The native engine against the Python engine: the same log through both must give the same output, reward by
reward and byte by byte, with the same refusals in the same words, through both batch entry points (the
backfill's JSON Lines and the worker's partition records). This is the test that lets both engines live."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import FILE_QUORUM, EngineConfig
from pipeline.engine.chunks import PythonBackfill
from pipeline.engine.partition import CONVERSIONS, RESERVED_PREFIX, TOUCHPOINTS, BatchOutput, InputRecord, journey_codec
from pipeline.engine.partition.processor import PartitionProcessor
from pipeline.events.avro import AvroCodec, conversion_to_record, reward_from_record, touchpoint_to_record
from pipeline.events.parse import parse_event
from pipeline.events.types import MODEL_NAMES, Touchpoint
from pipeline.money.exact import RatesTable
from pipeline.native import NativeBackfill, NativePartitionProcessor, available
from pipeline.units import DAY_MS, HOUR_MS

pytestmark = pytest.mark.skipif(not available(), reason="the native engine is not built")

T0 = 1_767_225_600_000
NOW = T0 + 400 * DAY_MS  # the backfill's reference time: after every event the logs hold
CURRENCIES = {"USD": ("1", 2), "JPY": ("0.0067", 0), "BHD": ("2.65", 3), "EUR": ("1.08", 2)}
CHANNELS = ("search", "display", "email", "social", "vídeo")


# ------------------------------------------------------------------------------------------------ generated logs

@st.composite
def configs(draw: st.DrawFn) -> tuple[EngineConfig, LearnedWeights | None]:
    learned = None
    if draw(st.booleans()):
        effects = {c: draw(st.floats(0, 1)) for c in CHANNELS if draw(st.booleans())}
        coalitions: dict[frozenset[str], tuple[int, int]] = {}
        for _ in range(draw(st.integers(0, 8))):
            members = frozenset(draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4)))
            n = draw(st.integers(0, 50))
            coalitions[members] = (n, draw(st.integers(0, n)))
        learned = LearnedWeights(journeys=draw(st.integers(0, 500)), converting_journeys=draw(st.integers(0, 100)),
                                 min_journeys=draw(st.integers(1, 200)), removal_effects=effects,
                                 coalitions=coalitions)
    first = Fraction(draw(st.integers(0, 5)), 10)
    last = Fraction(draw(st.integers(0, 10 - int(first * 10))), 10)
    window = draw(st.sampled_from([2 * HOUR_MS, DAY_MS, 3 * DAY_MS]))
    config = EngineConfig(
        default_model=draw(st.sampled_from(MODEL_NAMES)),
        window_ms=window,
        windows_ms=draw(st.sampled_from([{}, {"signup": window // 2}])),
        allowed_lateness_ms=draw(st.sampled_from([0, HOUR_MS // 2, 2 * HOUR_MS])),
        half_life_ms=draw(st.sampled_from([HOUR_MS, 7 * HOUR_MS + 13, DAY_MS])),
        position_first=first, position_last=last,
        max_journey_length=draw(st.sampled_from([2, 4, 1000])),
        refund_retention_ms=draw(st.sampled_from([DAY_MS, 4 * DAY_MS])),
        max_future_skew_ms=draw(st.sampled_from([0, HOUR_MS])),
        rates=RatesTable("USD", {c: Decimal(r) for c, (r, _) in CURRENCIES.items() if c != "USD"}),
    )
    return config, learned


def _value(rng: random.Random, currency: str) -> Any:
    digits = CURRENCIES[currency][1]
    minor = rng.choice([0, 1, 7, 99, 1000, 12345, 999_999, rng.randrange(10**9)])
    text = str(Decimal(minor).scaleb(-digits))
    form = rng.random()
    if form < 0.4:
        return text
    if form < 0.7:
        return float(text) if digits else int(minor)
    return int(minor) // (10 ** digits) if rng.random() < 0.5 else text


@st.composite
def logs(draw: st.DrawFn) -> list[str]:
    """JSON lines in arrival order: late, future, duplicated and refunded events, odd forms, garbage."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    users = [f"u{i}" for i in range(draw(st.integers(1, 5)))] + ["ü-sér", "a:b%c"]
    n = draw(st.integers(1, 70))
    t = T0
    lines: list[str] = []
    sent: list[dict[str, Any]] = []
    conversions: list[tuple[str, str, str]] = []  # (user, id, currency)
    for i in range(n):
        t += rng.choice([0, 1, 60_000, HOUR_MS // 3, HOUR_MS, 5 * HOUR_MS, DAY_MS])
        when = t - rng.choice([0, 0, 0, 1, HOUR_MS // 4, HOUR_MS, 3 * HOUR_MS]) if rng.random() < 0.3 else t
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.08 and sent:
            lines.append(json.dumps(rng.choice(sent)))  # a duplicate
            continue
        if roll < 0.13:
            lines.append(rng.choice(ODD_LINES))
            continue
        if roll < 0.6:
            event: dict[str, Any] = {
                "type": "touchpoint", "touchpoint_id": rng.choice([f"t{i}", f"t{i}", "t:0", f"tp-{i} "]),
                "episode_id": f"e{i % 3}", "user_id": user, "campaign_id": f"c{i % 4}",
                "channel": rng.choice(CHANNELS), "immediate_reward": rng.choice([0, 1, 0.5, 1e-300, -2.25]),
                "state": rng.choice([None, [0.1, 0.2], [], [[1]], {"a": [1, 2]}, "s", 3]),
                "action": rng.choice([None, 3, [1.0, 2.0]]),
            }
            if rng.random() < 0.1:
                del event["immediate_reward"]
        elif roll < 0.8 or not conversions:
            currency = rng.choice(list(CURRENCIES))
            cid = f"c{i}"
            event = {"type": "conversion", "conversion_id": cid, "user_id": user,
                     "event": rng.choice(["purchase", "signup", " Purchase "]), "currency": currency,
                     "value": _value(rng, currency)}
            if rng.random() < 0.3:
                event["model"] = rng.choice(MODEL_NAMES)
            conversions.append((user, cid, currency))
        else:
            owner, of, currency = rng.choice(conversions)
            if rng.random() < 0.2:
                currency = rng.choice(list(CURRENCIES))
            event = {"type": "conversion", "conversion_id": f"r{i}", "user_id": owner if rng.random() < 0.9 else user,
                     "event": "refund", "currency": currency, "value": _value(rng, currency),
                     "refund_of": of if rng.random() < 0.9 else "nope"}
        stamp = rng.random()
        event["timestamp"] = (when if stamp < 0.7 else _iso(when) if stamp < 0.9
                              else rng.choice([when + 400 * DAY_MS, 1_000, when * 1.0]))
        sent.append(event)
        lines.append(json.dumps(event, ensure_ascii=rng.random() < 0.5))
    return lines


def _iso(ms: int) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    offset = random.Random(ms).choice([0, 2, -5])
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(timezone(timedelta(hours=offset)))
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


ODD_LINES = (
    '{"type": "touchpoint", "touchpoint_id": "bad"',
    '{"type": "click"}',
    '[1, 2]',
    '{"type": "touchpoint", "touchpoint_id": "n", "episode_id": "e", "user_id": "u0", "campaign_id": "c",'
    ' "channel": "x", "timestamp": 1767225600000, "immediate_reward": NaN}',
    '{"type": "conversion", "conversion_id": "x", "user_id": "u0", "event": "purchase", "value": -5,'
    ' "currency": "USD", "timestamp": 1767225600000}',
    '{"type": "conversion", "conversion_id": "x", "user_id": "u0", "event": "purchase", "value": "1.234",'
    ' "currency": "usd", "timestamp": 1767225600000}',
    '{"type": "conversion", "conversion_id": "y", "user_id": "u0", "event": "purchase", "value": 5,'
    ' "currency": "XYZ", "timestamp": 1767225600000}',
    '{"type": "touchpoint", "touchpoint_id": "  ", "episode_id": "e", "user_id": "u0", "campaign_id": "c",'
    ' "channel": "x", "timestamp": 1767225600000}',
    '{"type": "touchpoint", "touchpoint_id": "w", "episode_id": "e", "user_id": "u0", "campaign_id": "c",'
    ' "channel": "x", "timestamp": "2026-01-01T00:00:00.5+02:00", "immediate_reward": 1e9}',
    '{"type": "touchpoint", "touchpoint_id": "d", "episode_id": "e", "user_id": "u0", "campaign_id": "c",'
    ' "channel": "x", "timestamp": 1767225600000, "timestamp": 1767225600001}',
    '\ufeff{"type": "click"}',
    '   ',
    '{"type": "conversion", "conversion_id": "z", "user_id": "u0", "event": "purchase", "value": "1_000",'
    ' "currency": "JPY", "timestamp": 1767225600000, "model": ""}',
)


def _chunks(lines: list[str], rng: random.Random) -> list[tuple[bytes, int]]:
    data = ("\n".join(lines) + ("\n" if rng.random() < 0.8 else "")).encode()
    parts, start, line = [], 0, 1
    while start < len(data):
        cut = data.find(b"\n", min(len(data), start + rng.randrange(1, 400)))
        end = len(data) if cut < 0 else cut + 1
        parts.append((data[start:end], line))
        line += data[start:end].count(b"\n")
        start = end
    return parts


def _run(engine: Any, parts: list[tuple[bytes, int]], ahead: str = "none", file: Path | None = None
         ) -> tuple[bytes, list[tuple[int, str, str, bool, bytes]], Any]:
    """``ahead``: what each ``feed`` is told comes next: nothing, the next chunk, or a copy of a chunk that is not
    the next (the parse made ahead is then unused). With ``file``, the output is written to it (as the backfill
    command does) and read back."""
    out, refused = b"", []
    with contextlib.ExitStack() as stack:
        fd = None if file is None else stack.enter_context(open(file, "wb", buffering=0)).fileno()
        for i, (chunk, first) in enumerate(parts):
            following = parts[i + 1][0] if i + 1 < len(parts) else None
            told = {"none": None, "next": following, "other": bytes(bytearray(chunk))}[ahead]
            written, r, _ = engine.feed(chunk, first, fd, told)
            out += written
            refused += [(n, e.field, e.reason, type(e).__name__ == "LateEvent", raw.rstrip(b"\n"))
                        for n, e, raw in r]
        out += engine.finish(fd)
    if file is not None:
        out = file.read_bytes()
    return out, refused, dataclasses.asdict(engine.stats())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logs(), st.integers(0, 2**32 - 1))
def test_the_backfill_engines_agree_byte_for_byte(tmp_path_factory: pytest.TempPathFactory,
                                                   setup: tuple[EngineConfig, LearnedWeights | None],
                                                   lines: list[str], seed: int) -> None:
    config, learned = setup
    rng = random.Random(seed)
    parts = _chunks(lines, rng)
    py_out, py_refused, py_stats = _run(PythonBackfill(config, learned, NOW), parts)
    # half the examples parse every chunk on the second thread (by default only chunks of 64 KiB or more are);
    # half write to a file through the writer thread, handing it buffers of a few records or of one (a step's
    # output goes over in pieces, as the end of input's does on large logs)
    native = NativeBackfill(config, learned, NOW, FILE_QUORUM, parse_thread_from=rng.choice([0, 64 * 1024]),
                            spill_bytes=rng.choice([1, 600, 4 << 20]))
    file = tmp_path_factory.mktemp("out") / "rewards.jsonl" if rng.random() < 0.5 else None
    # and chunks are told ahead (parsed on a thread of their own a call early), or wrongly told
    nat_out, nat_refused, nat_stats = _run(native, parts, rng.choice(["none", "next", "next", "other"]), file)
    assert nat_refused == py_refused
    assert nat_out.decode().splitlines() == py_out.decode().splitlines()
    assert nat_out == py_out
    assert nat_stats == py_stats


# ------------------------------------------------------------------------------------------------ the worker's path

TP, CV = AvroCodec("touchpoint"), AvroCodec("conversion")


def _records(lines: list[str], rng: random.Random) -> list[InputRecord]:
    records = []
    for i, line in enumerate(lines):
        try:
            event = parse_event(orjson.loads(line))
        except Exception:
            continue
        ingest = event.timestamp_ms + rng.choice([0, 1000, HOUR_MS, -HOUR_MS])
        if isinstance(event, Touchpoint):
            value = TP.encode(touchpoint_to_record(event))
            records.append(InputRecord(TOUCHPOINTS, i, event.user_id.encode(), value, ingest))
        else:
            value = CV.encode(conversion_to_record(event))
            records.append(InputRecord(CONVERSIONS, i, event.user_id.encode(), value, ingest))
        if rng.random() < 0.05:  # poison among them
            records.append(InputRecord(rng.choice([TOUCHPOINTS, CONVERSIONS]), i, b"u0",
                                       rng.choice([None, b"\x00junk", value, TP.encode(touchpoint_to_record(
                                           Touchpoint("p", "e", "u0", "c", "x", T0, 0.0)))]), ingest))
    return records


class Table(dict[bytes, bytes]):
    def load(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]


REWARDS = AvroCodec("attributed_reward")


def _view(out: BatchOutput, table: Table) -> dict[str, Any]:
    """What a batch means, whichever engine wrote it: each key's journey and outbox, the frontier, refusals."""
    writes: dict[bytes, list[Any]] = {}
    for key, value in out.writes:
        if value is None:
            writes.setdefault(key, []).append(None)
            table.pop(key, None)
        elif key.startswith(RESERVED_PREFIX):
            writes.setdefault(key, []).append(orjson.loads(value))
            table[key] = value
        else:
            writes.setdefault(key, []).append((journey_codec.decode_journey(value),
                                               [reward_from_record(REWARDS.decode(r))
                                                for r in journey_codec.outbox(value)]))
            table[key] = value
    return {"writes": writes, "refused": [(r.record.offset, r.error.field, r.error.reason) for r in out.refused],
            "rewards": out.rewards}


def _stream(make: Callable[[], Any], records: list[InputRecord], cuts: list[int], idles: list[Any],
            switch: Callable[[], Any] | None = None) -> list[dict[str, Any]]:
    table, proc = Table(), make()
    views, at = [], 0
    for k, cut in enumerate(cuts):
        if switch is not None and k == len(cuts) // 2:  # another engine takes over the same state
            proc = switch()
            proc.restore(sorted(table.items()))
        idle, floor = idles[k]
        views.append(_view(proc.process(records[at:cut], table.load, idle, floor), table))
        at = cut
    for _ in range(3):
        views.append(_view(proc.advance(table.load, (TOUCHPOINTS, CONVERSIONS), NOW), table))
    if switch is None:  # counters belong to a process, not to the stored state another engine takes over
        views.append(dataclasses.asdict(proc.stats))
    return views


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logs(), st.integers(0, 2**32 - 1))
def test_the_partition_engines_agree_and_read_each_others_state(
        setup: tuple[EngineConfig, LearnedWeights | None], lines: list[str], seed: int) -> None:
    config, learned = setup
    rng = random.Random(seed)
    records = _records(lines, rng)
    cuts = sorted({rng.randrange(0, len(records) + 1) for _ in range(rng.randrange(1, 6))} | {len(records)})
    idles = [(rng.choice([(), (CONVERSIONS,), (TOUCHPOINTS, CONVERSIONS)]),
              rng.choice([None, None, T0 + rng.randrange(0, 30) * HOUR_MS])) for _ in cuts]
    slice_limit = rng.choice([1, 3, 1000])

    def python() -> PartitionProcessor:
        return PartitionProcessor(3, config, learned, slice_limit=slice_limit)

    def native() -> NativePartitionProcessor:
        return NativePartitionProcessor(3, config, learned, slice_limit=slice_limit)

    reference = _stream(python, records, cuts, idles)
    assert _stream(native, records, cuts, idles) == reference
    assert _stream(python, records, cuts, idles, switch=native) == reference[:-1]
    assert _stream(native, records, cuts, idles, switch=python) == reference[:-1]


def _apart_view(out: BatchOutput, table: Table, outbox: bool) -> dict[str, Any]:
    """What a batch means, whether or not its journeys keep an outbox: each key's journey after the batch, each
    key's rewards in order, the frontier, the refusals. The step's ``reward_records`` are what the writes'
    outboxes carry, per user in the same order (with an outbox), or the writes carry none (without)."""
    journeys: dict[bytes, Any] = {}
    carried: dict[bytes, list[bytes]] = {}
    for key, value in out.writes:
        if value is None:
            journeys[key] = None
            table.pop(key, None)
            continue
        table[key] = value
        if key.startswith(RESERVED_PREFIX):
            journeys[key] = orjson.loads(value)
            continue
        journeys[key] = journey_codec.decode_journey(value)
        if records := journey_codec.outbox(value):
            carried.setdefault(key, []).extend(records)
    emitted: dict[bytes, list[bytes]] = {}
    for key, record in out.reward_records:
        emitted.setdefault(key, []).append(record)
    assert carried == (emitted if outbox else {})
    rewards = {key: [reward_from_record(REWARDS.decode(r)) for r in records] for key, records in emitted.items()}
    return {"journeys": journeys, "rewards": rewards, "count": out.rewards,
            "refused": [(r.record.offset, r.error.field, r.error.reason) for r in out.refused]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), logs(), st.integers(0, 2**32 - 1))
def test_reward_records_are_the_outboxes_and_without_one_journeys_carry_none(
        setup: tuple[EngineConfig, LearnedWeights | None], lines: list[str], seed: int) -> None:
    """In both engines a step's ``reward_records`` are the rewards its writes' outboxes carry (per user, in
    order); the Kafka runtime's engines (``outbox=False``) give the same journeys and the very same
    ``reward_records``, and every stored journey without an outbox."""
    config, learned = setup
    rng = random.Random(seed)
    records = _records(lines, rng)
    cuts = sorted({rng.randrange(0, len(records) + 1) for _ in range(rng.randrange(1, 6))} | {len(records)})

    def run(proc: Any, outbox: bool) -> tuple[list[dict[str, Any]], list[list[tuple[bytes, bytes]]]]:
        table, views, emitted, at = Table(), [], [], 0
        for cut in cuts:
            out = proc.process(records[at:cut], table.load)
            views.append(_apart_view(out, table, outbox))
            emitted.append(out.reward_records)
            at = cut
        for _ in range(3):
            out = proc.advance(table.load, (TOUCHPOINTS, CONVERSIONS), NOW)
            views.append(_apart_view(out, table, outbox))
            emitted.append(out.reward_records)
        if not outbox:
            assert all(not journey_codec.outbox(v) for k, v in table.items() if not k.startswith(RESERVED_PREFIX))
        return views, emitted

    assert NativePartitionProcessor(3, config, learned).event_times(records) == \
        PartitionProcessor(3, config, learned).event_times(records)
    views = {}
    for engine in (PartitionProcessor, NativePartitionProcessor):
        with_outbox = run(engine(3, config, learned), outbox=True)
        assert run(engine(3, config, learned, outbox=False), outbox=False) == with_outbox
        views[engine] = with_outbox[0]
    assert views[NativePartitionProcessor] == views[PartitionProcessor]
