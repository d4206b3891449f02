"""The native engine (Rust, ``pipeline._native``) behind the engine's two batch entry points.

``NativeBackfill`` is the backfill's engine (JSON Lines chunks in, reward lines out) and
``NativePartitionProcessor`` the runtimes' (a partition's raw records in, table writes out), each with exactly
the contract of its Python counterpart (``pipeline.engine.chunks.PythonBackfill``,
``pipeline.engine.partition.processor.PartitionProcessor``). The native side decides what it can prove Python
decides the same way; everything else (a line in an odd form, a record of an older schema, the wording of a refusal) is
handed back to the Python code given here, so the two engines refuse the same events in the same words.

May import: ``pipeline.attribution``, ``pipeline.engine``, ``pipeline.errors``, ``pipeline.events``,
``pipeline.money``."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from pipeline.attribution.journeys import (
    ConvertedJourney,
    JourneyPaths,
    Journeys,
    LapsedJourney,
    OutcomeArrays,
    Touch,
    TouchOutcome,
)
from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import EngineConfig, EngineStats, refusals
from pipeline.engine.chunks import Refused
from pipeline.engine.partition import (
    CONVERSIONS,
    TOUCHPOINTS,
    BatchOutput,
    InputRecord,
    Loader,
    Refusal,
    decode_record,
    meta_key,
)
from pipeline.errors import InvalidEvent
from pipeline.events.avro import default_registry
from pipeline.events.parse import parse_line
from pipeline.events.types import Event, Touchpoint
from pipeline.money.currency import MINOR_UNITS
from pipeline.money.exact import to_minor

try:
    from pipeline import _native
except ImportError as exc:  # the build was skipped (no Rust at install time) or failed
    _native = None
    # a module that is simply absent is the optional build skipped; anything else (a broken .so) says itself
    IMPORT_CAUSE: str | None = ("no pipeline._native: installed without Rust"
                                if importlib.util.find_spec("pipeline._native") is None else str(exc))
    IMPORT_ERROR: str | None = (f"the native engine is not installed ({IMPORT_CAUSE}); install a wheel, or "
                                "reinstall from source with Rust (see native/rust-toolchain.toml), or choose the "
                                "python engine")
else:
    IMPORT_CAUSE = None
    IMPORT_ERROR = None


def available() -> bool:
    """Whether ``pipeline._native`` loaded; ``pipeline.native.choice`` decides what to do when it did not."""
    return _native is not None


def release_free_memory() -> None:
    """Have the native allocator return the pages its freed blocks left empty (the memory benchmark's second
    figure: what the open journeys hold, without what growing the maps freed)."""
    _require().release_free_memory()


def _require() -> Any:
    if _native is None:
        raise RuntimeError(IMPORT_ERROR)
    return _native


def _ratio(f: Fraction) -> tuple[int, int]:
    return f.numerator, f.denominator


def _decimal(d: Decimal) -> tuple[int, int]:
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int) and not sign
    return int("".join(map(str, digits))), exponent


def native_config(config: EngineConfig, learned: LearnedWeights | None) -> dict[str, Any]:
    """The engine's settings as the native side reads them."""
    return {
        "default_model": config.default_model,
        "window_ms": config.window_ms,
        "windows_ms": dict(config.windows_ms),
        "max_window_ms": config.max_window_ms,
        "allowed_lateness_ms": config.allowed_lateness_ms,
        "half_life_ms": config.half_life_ms,
        "position_first": _ratio(config.position_first),
        "position_last": _ratio(config.position_last),
        "max_journey_length": config.max_journey_length,
        "refund_retention_ms": config.refund_retention_ms,
        "max_future_skew_ms": config.max_future_skew_ms,
        "base": config.rates.base,
        "rates": {code: _decimal(rate) for code, rate in config.rates.rates.items()},
        "minor_units": dict(MINOR_UNITS),
        "learned": None if learned is None else {
            "fallback": learned.fallback,
            "removal_effects": dict(learned.removal_effects),
            "coalitions": [(sorted(c), n, k) for c, (n, k) in learned.coalitions.items()],
        },
    }


def event_tuple(event: Event) -> tuple[Any, ...]:
    """An event as the native side takes it from Python."""
    if isinstance(event, Touchpoint):
        return ("touchpoint", event.touchpoint_id, event.episode_id, event.user_id, event.campaign_id, event.channel,
                event.timestamp_ms, event.immediate_reward)
    return ("conversion", event.conversion_id, event.user_id, event.event, to_minor(event.value, event.currency),
            event.currency, event.timestamp_ms, event.refund_of, event.model)


def _words(name: str, args: Sequence[Any]) -> InvalidEvent:
    return refusals.BY_NAME[name](*args)


def engine_stats(data: dict[str, Any]) -> EngineStats:
    stats = EngineStats(**{k: v for k, v in data.items() if k in EngineStats.__dataclass_fields__
                           and k != "per_model"})
    stats.per_model.update(data["per_model"])
    return stats


class NativeBackfill:
    """The backfill's engine in Rust; see ``pipeline.engine.chunks.BackfillEngine``."""

    def __init__(self, config: EngineConfig, learned: LearnedWeights | None, reference_ms: int,
                 quorum: int, journeys: bool = False, parse_thread_from: int | None = None,
                 spill_bytes: int | None = None) -> None:
        """With ``journeys`` the rewards are folded into completed journeys instead (``journeys()``).
        Chunks of ``parse_thread_from`` bytes or more are parsed on a second thread (default: 64 KiB). Written
        output (``out_fd``) goes to the writer thread in buffers of about ``spill_bytes`` (default: 4 MiB)."""
        self.config = config
        extra = {k: v for k, v in (("parse_thread_from", parse_thread_from), ("spill_bytes", spill_bytes))
                 if v is not None}
        self._backfill = _require().Backfill(native_config(config, learned), quorum, reference_ms,
                                             lambda line: event_tuple(parse_line(line)), _words, journeys, **extra)

    @property
    def rewards_out(self) -> int:
        return int(self._backfill.stats()["rewards_out"])

    def feed(self, chunk: bytes, first_line: int, out_fd: int | None = None, ahead: bytes | None = None
             ) -> tuple[bytes, list[Refused], int]:
        out, refused, events_in = self._backfill.feed(chunk, first_line, out_fd, ahead)
        return out, [(n, err, raw.rstrip(b"\n")) for n, err, raw in refused], events_in

    def finish(self, out_fd: int | None = None) -> bytes:
        return bytes(self._backfill.finish(out_fd))

    def stats(self) -> EngineStats:
        return engine_stats(self._backfill.stats())

    def watermark(self) -> int | None:
        wm: int | None = self._backfill.watermark()
        return wm

    def paths(self) -> JourneyPaths:
        """After ``finish``: the completed journeys as the learned models fit on them (no touch ids)."""
        converted, lapsed, censored, unattributed, end, names, raw = self._backfill.take_paths(
            self.config.max_window_ms, self.config.max_journey_length)
        ch, camp, touch, credit, total = raw
        outcomes = OutcomeArrays(list(names), np.frombuffer(ch, dtype="<u4").astype(np.int64),
                                 np.frombuffer(camp, dtype="<u4").astype(np.int64),
                                 np.frombuffer(touch, dtype="<i8").astype(np.int64),
                                 np.frombuffer(credit, dtype="<i8").astype(np.int64),
                                 np.frombuffer(total, dtype="<i8").astype(np.int64))
        return JourneyPaths(converted, lapsed, censored, unattributed, outcomes, end)

    def journeys(self, with_outcomes: bool = True) -> Journeys:
        """After ``finish``: the completed journeys (``pipeline.attribution.journeys``' definition), in
        ``Journeys.sort``'s order; ``with_outcomes`` also every final touchpoint's outcome."""
        converted, lapsed, censored, unattributed, outcomes, end = self._backfill.take_journeys(
            self.config.max_window_ms, self.config.max_journey_length, with_outcomes)
        new = tuple.__new__  # the touches come as plain tuples in Touch's field order

        def touches(raw: list[tuple[str, str, str, int]]) -> tuple[Touch, ...]:
            return tuple([new(Touch, t) for t in raw])

        out = Journeys(end_ms=end, unattributed_conversions=unattributed)
        out.converted = [ConvertedJourney(u, c, touches(ts), v, t) for u, c, v, t, ts in converted]
        out.lapsed = [LapsedJourney(u, touches(ts)) for u, ts in lapsed]
        out.censored = [LapsedJourney(u, touches(ts)) for u, ts in censored]
        out.outcomes = [TouchOutcome(u, new(Touch, t), total, credit) for u, t, total, credit in outcomes]
        return out


class NativePartitionProcessor:
    """One input partition's processing in Rust; see ``pipeline.engine.partition.processor.PartitionProcessor``."""

    def __init__(self, partition: int, config: EngineConfig, learned: LearnedWeights | None = None, *,
                 slice_limit: int = 1000, outbox: bool = True) -> None:
        registry = default_registry()
        fingerprints = tuple(registry.current[name].fingerprint
                             for name in ("touchpoint", "conversion", "attributed_reward"))
        self.partition = partition
        self.meta_key = meta_key(partition)
        # The batch the native step is on, for the records it hands back to Python. Held in a list the callback
        # closes over, not reached through ``self``: the native object keeps the callback, and a cycle through
        # it is one the garbage collector cannot see, so the processor would never be freed.
        batch: list[Sequence[InputRecord]] = [()]
        self._batch = batch

        def decode(i: int) -> tuple[Any, ...]:
            return event_tuple(decode_record(batch[0][i]))

        self._partition = _require().Partition(partition, native_config(config, learned), slice_limit, fingerprints,
                                               decode, _words, outbox)

    @property
    def stats(self) -> EngineStats:
        return engine_stats(self._partition.stats())

    def restore(self, items: Iterable[tuple[bytes, bytes]]) -> int:
        return int(self._partition.restore(items))

    def event_times(self, records: Sequence[InputRecord]) -> list[int | None]:
        """Read natively where the fast path can, by the Python decoder elsewhere (as ``process`` does)."""
        times: list[int | None] = self._partition.event_times(records)
        for i, t in enumerate(times):
            if t is None:
                with contextlib.suppress(InvalidEvent):
                    times[i] = decode_record(records[i]).timestamp_ms
        return times

    def process(self, records: Sequence[InputRecord], load: Loader, idle: Collection[str] = (),
                floor_ms: int | None = None) -> BatchOutput:
        self._batch[0] = records
        try:
            writes, refused, reward_records = self._partition.process(
                records, load, (TOUCHPOINTS in idle, CONVERSIONS in idle), floor_ms)
        finally:
            self._batch[0] = ()
        return BatchOutput(writes, [Refusal(records[i], err) for i, err in refused], reward_records)

    def advance(self, load: Loader, idle: Collection[str] = (), floor_ms: int | None = None) -> BatchOutput:
        writes, _, reward_records = self._partition.advance(load, (TOUCHPOINTS in idle, CONVERSIONS in idle),
                                                            floor_ms)
        return BatchOutput(writes, [], reward_records)

    def newest_ms(self) -> int | None:
        newest: int | None = self._partition.newest_ms()
        return newest

    def lag_ms(self) -> int | None:
        wm, newest = self._partition.watermark(), self._partition.newest_ms()
        if wm is None or newest is None:
            return None
        return max(0, int(newest) - int(wm))
