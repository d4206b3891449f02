"""The engine's completed journeys of a JSON Lines log: the backfill run, its rewards folded into journeys.

``rewardstream fit`` (and the delay model) read journeys through this, so they see exactly what the backfill
and the worker attribute: same duplicates, windows, expiry, caps and repeat conversions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.attribution.journeys import JourneyCollector, JourneyPaths, Journeys
from pipeline.backfill.lines import MAX_LINE_BYTES, Overlong, read_chunks, with_ahead
from pipeline.engine import FILE_QUORUM, AttributionEngine, EngineConfig
from pipeline.engine.chunks import BackfillEngine
from pipeline.errors import InvalidEvent
from pipeline.events.jsonl import reward_to_json
from pipeline.events.types import Event
from pipeline.native.choice import DEFAULT_ENGINE, backfill_engine, resolve


@dataclass(frozen=True)
class JourneyRun:
    journeys: Journeys
    events_in: int
    rejected: int
    seconds: float


def _run(path: Path, config: EngineConfig, engine: str) -> tuple[Any, JourneyCollector, int, int]:
    """The engine over the log (``native`` or ``python``, resolved): the native one folds its rewards into
    journeys as it produces them, the Python one's are read back from their JSON form into ``JourneyCollector``."""
    reference_ms = time.time_ns() // 1_000_000
    collector = JourneyCollector(config.max_window_ms, config.max_journey_length)
    runner: BackfillEngine
    if engine == "native":
        from pipeline.native import NativeBackfill

        runner = NativeBackfill(config, None, reference_ms, FILE_QUORUM, journeys=True)
    else:
        runner = backfill_engine(engine, config, None, reference_ms)
    loads = orjson.loads
    events_in = rejected = 0
    with open(path, "rb") as src:
        for piece, ahead in with_ahead(read_chunks(src, MAX_LINE_BYTES)):
            if isinstance(piece, Overlong):
                events_in += 1
                rejected += 1
                continue
            out, refused, n = runner.feed(piece.data, piece.first_line, ahead=ahead)
            events_in += n
            rejected += len(refused)
            collector.add_all(loads(line) for line in out.splitlines())
    collector.end = runner.watermark()
    collector.add_all(loads(line) for line in runner.finish().splitlines())
    return runner, collector, events_in, rejected


def journeys_of_log(path: Path, config: EngineConfig, engine: str = DEFAULT_ENGINE, with_outcomes: bool = True
                    ) -> JourneyRun:
    """The log's completed journeys (and, ``with_outcomes``, every final touchpoint's outcome: the delay
    model's input). The learned models are not needed: journeys do not depend on the model that splits them."""
    started = time.perf_counter()
    engine = resolve(engine)
    runner, collector, events_in, rejected = _run(path, config, engine)
    journeys = runner.journeys(with_outcomes) if engine == "native" else collector.finish(collector.end)
    return JourneyRun(journeys, events_in, rejected, time.perf_counter() - started)


def paths_of_log(path: Path, config: EngineConfig, engine: str = DEFAULT_ENGINE) -> tuple[JourneyPaths, int, int]:
    """The log's completed journeys as the learned models fit on them: (paths, events in, refused)."""
    engine = resolve(engine)
    runner, collector, events_in, rejected = _run(path, config, engine)
    paths = runner.paths() if engine == "native" else collector.finish(collector.end).as_paths()
    return paths, events_in, rejected


def journeys_of_events(events: Iterable[Event], config: EngineConfig, quorum: int = FILE_QUORUM) -> Journeys:
    """The same over events in memory, in their order, through the reference engine (tests, model comparison);
    ``quorum`` as for a file (see ``EventClock``)."""
    engine = AttributionEngine(config, quorum=quorum)
    collector = JourneyCollector(config.max_window_ms, config.max_journey_length)
    reference_ms = time.time_ns() // 1_000_000
    for event in events:
        try:
            collector.add_all(reward_to_json(r) for r in engine.process(event, reference_ms))
        except InvalidEvent:
            continue
    end = engine.watermark
    collector.add_all(reward_to_json(r) for r in engine.flush())
    return collector.finish(end)
