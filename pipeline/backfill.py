"""Batch backfill: the attribution engine over a JSON Lines log, in file order.

The reference the stream is compared against: same engine, same configuration, no Kafka. Bad lines go
to ``<output>.rejected.jsonl`` with the reason and are never counted as attributed.

Timestamps in a file cannot be judged against ingest times as the stream judges them. Two rules stand in:
an event dated more than ``max_future_skew`` after the moment the backfill started is refused as future, and
the clock moves only once ``FILE_QUORUM`` events show the new time, so a few events with a wrong clock never
make the valid ones late.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.money import from_minor
from pipeline.engine import FILE_QUORUM, AttributionEngine, EngineConfig
from pipeline.events.errors import InvalidEvent, LateEvent
from pipeline.events.jsonl import reward_to_json
from pipeline.events.parse import parse_event
from pipeline.events.types import AttributedReward


@dataclass
class BackfillSummary:
    events_in: int
    rejected: int
    late: int
    rewards_out: int
    conversions_attributed: int
    conversions_unattributed: int
    duplicates: int
    finals: int
    total_attributed_minor: int
    base_currency: str
    seconds: float

    def lines(self) -> list[str]:
        rate = self.events_in / self.seconds if self.seconds > 0 else float("inf")
        return [
            f"events in:               {self.events_in:,} ({rate:,.0f} events/s)",
            f"conversions attributed:  {self.conversions_attributed:,} "
            f"(+{self.conversions_unattributed:,} with no touchpoint in their window)",
            f"rewards out:             {self.rewards_out:,} ({self.finals:,} final)",
            f"rejected:                {self.rejected:,} (of which late: {self.late:,})",
            f"duplicates ignored:      {self.duplicates:,}",
            f"total value attributed:  {from_minor(self.total_attributed_minor, self.base_currency):,} "
            f"{self.base_currency}",
        ]


def rejected_path(output: Path) -> Path:
    name = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(name + ".rejected.jsonl")


def _lines(fh: IO[bytes], progress: Any) -> Iterator[tuple[int, bytes]]:
    consumed = 0
    for number, line in enumerate(fh, 1):
        consumed += len(line)
        if progress is not None and number % 4096 == 0:
            progress.update(consumed)
            consumed = 0
        yield number, line
    if progress is not None:
        progress.update(consumed)


def run_backfill(
    input_path: Path,
    output_path: Path,
    config: EngineConfig,
    learned: LearnedWeights | None = None,
    progress: bool = True,
) -> BackfillSummary:
    engine = AttributionEngine(config, learned, quorum=FILE_QUORUM)
    # A file has no ingest times. The one real clock it has is now: an event dated after the backfill started
    # (plus the allowed skew) cannot have happened yet. Any real log lies wholly before that moment, so its
    # rewards do not depend on when the backfill runs.
    reference_ms = time.time_ns() // 1_000_000
    rejected = late = events_in = rewards_out = 0
    dumps = orjson.dumps
    started = time.perf_counter()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(input_path), unit="B", unit_scale=True, desc="backfill",
                   mininterval=0.5, leave=False)
    with open(input_path, "rb") as src, open(output_path, "wb") as out, \
            open(rejected_path(output_path), "wb") as rej:

        def emit(rewards: list[AttributedReward]) -> None:
            nonlocal rewards_out
            if rewards:
                out.write(b"".join(dumps(reward_to_json(r)) + b"\n" for r in rewards))
                rewards_out += len(rewards)

        for number, line in _lines(src, bar):
            if not line.strip():
                continue
            events_in += 1
            try:
                event = parse_event(orjson.loads(line))
                emit(engine.process(event, reference_ms))
            except orjson.JSONDecodeError as exc:
                rejected += 1
                rej.write(dumps({"line": number, "field": "<json>", "reason": f"malformed JSON: {exc}",
                                 "raw": line.decode("utf-8", "replace").rstrip("\n")}) + b"\n")
            except InvalidEvent as exc:
                rejected += 1
                late += isinstance(exc, LateEvent)
                rej.write(dumps({"line": number, "field": exc.field, "reason": exc.reason,
                                 "raw": line.decode("utf-8", "replace").rstrip("\n")}) + b"\n")
        emit(engine.flush())
    if bar is not None:
        bar.close()
    s = engine.stats
    return BackfillSummary(
        events_in=events_in, rejected=rejected, late=late, rewards_out=rewards_out,
        conversions_attributed=s.conversions_attributed, conversions_unattributed=s.conversions_unattributed,
        duplicates=s.duplicate_touchpoints + s.duplicate_conversions, finals=s.finals,
        total_attributed_minor=s.total_attributed_minor, base_currency=config.rates.base,
        seconds=time.perf_counter() - started,
    )
