"""The worker's counters and the ``/stats/`` document, the same for both runtimes.

Engine figures are summed over the partitions a worker owns now and those it handed over (their counters are
kept as ``retired``, so a rebalance never makes a counter go down). Each runtime adds what only it has
(``extra``): redeliveries and offset holes for Faust, transactions and held conversions for the Kafka runtime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.engine import EngineConfig, EngineStats
from pipeline.engine.partition import PartitionEngine
from pipeline.money.exact import from_minor
from pipeline.shell.outages import DEPENDENCIES
from pipeline.shell.tick_timing import TICKS


@dataclass
class WorkerCounters:
    events_in: int = 0
    dead_letters: int = 0  # every refused record, whatever refused it, goes to the dead-letter topic
    hole_records: int = 0  # records Faust skipped that the worker read from Kafka itself
    repeats_skipped: int = 0  # records delivered again after this worker (or the committed offset) was past them
    batches: int = 0
    rewards_out: int = 0  # reward records acknowledged by the rewards topic (repeats after a crash included)
    first_event_at: float | None = None  # wall-clock seconds, for throughput measurements
    last_event_at: float | None = None
    retired: EngineStats = field(default_factory=EngineStats)  # partitions this worker no longer owns


def retire(counters: WorkerCounters, stats: EngineStats) -> None:
    """Keep the counters of a partition this worker no longer owns (its pending touchpoints are the next
    owner's)."""
    counters.retired = counters.retired + dataclasses.replace(stats, pending_touchpoints=0)


def totals(counters: WorkerCounters, processors: Mapping[int, PartitionEngine]) -> EngineStats:
    return sum((proc.stats for proc in processors.values()), start=counters.retired)


def stats_json(counters: WorkerCounters, processors: Mapping[int, PartitionEngine],
               idle_inputs: Callable[[int], list[str]], config: EngineConfig, sent_again: int = 0,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    s = totals(counters, processors)
    lags = [lag for lag in (p.lag_ms() for p in processors.values()) if lag is not None]
    c = counters
    return {
        "events_in": c.events_in,
        "batches": c.batches,
        "rewards_out": c.rewards_out,
        "rewards_sent_again": sent_again,
        "pending_touchpoints": s.pending_touchpoints,
        "touchpoints": s.touchpoints,
        "conversions": s.conversions,
        "refunds": s.refunds,
        "conversions_attributed": s.conversions_attributed,
        "conversions_unattributed": s.conversions_unattributed,
        "corrections": s.corrections,
        "finals": s.finals,
        "duplicates": s.duplicate_touchpoints + s.duplicate_conversions,
        "dropped_touchpoints": s.dropped_touchpoints,
        "rejected": c.dead_letters,
        "hole_records": c.hole_records,
        "repeats_skipped": c.repeats_skipped,
        "dead_letters": c.dead_letters,
        "total_attributed": float(from_minor(s.total_attributed_minor, config.rates.base)),
        "base_currency": config.rates.base,
        "per_model": dict(s.per_model),
        "watermark_lag_seconds": max(lags) / 1000 if lags else None,
        # per partition: its lag and the inputs no longer holding its watermark back (why a lag stays)
        "partition_clocks": {str(p): {"lag_seconds": None if (lag := proc.lag_ms()) is None else lag / 1000,
                                      "idle_inputs": idle_inputs(p)}
                             for p, proc in sorted(processors.items())},
        "partitions": sorted(processors),
        "first_event_at": c.first_event_at,
        "last_event_at": c.last_event_at,
        "dependencies": DEPENDENCIES.metrics(),
        "log_lines_held_back": DEPENDENCIES.suppressed_lines,
        "tick": {"count": TICKS.count, "total_seconds": TICKS.total_seconds, "last_seconds": TICKS.last_seconds,
                 "max_seconds": TICKS.max_seconds, "max_stall_seconds": TICKS.max_stall_seconds},
        **(extra or {}),
    }
