"""Batch backfill: the attribution engine over a JSON Lines log, in file order.

The reference the stream is compared against: same engine, same configuration, no Kafka. Bad lines go
to ``<output>.rejected.jsonl`` with the reason and are never counted as attributed.

Two engines run it with the same output: ``native`` (Rust, the default) and ``python`` (the reference); see
``engines``. The input is read in chunks of whole lines, so memory is bounded by the journeys held and the line
limit, not by the file.

Timestamps in a file cannot be judged against ingest times as the stream judges them. Two rules stand in:
an event dated more than ``max_future_skew`` after the moment the backfill started is refused as future, and
the clock moves only once ``FILE_QUORUM`` events show the new time, so a few events with a wrong clock never
make the valid ones late.

May import: ``pipeline.attribution``, ``pipeline.engine``, ``pipeline.errors``, ``pipeline.events``,
``pipeline.kafka``, ``pipeline.money``, ``pipeline.native``, ``pipeline.settings``, ``pipeline.sinks``."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.backfill.lines import MAX_LINE_BYTES, Overlong, read_chunks, with_ahead
from pipeline.engine import EngineConfig
from pipeline.errors import LateEvent
from pipeline.money.exact import from_minor
from pipeline.native.choice import DEFAULT_ENGINE, backfill_engine
from pipeline.sinks import DEFAULT_FORMAT, SUFFIXES, open_rewards, pumped


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
    """``<output>.rejected.jsonl``, the output's format suffix dropped."""
    name = output.name
    for suffix in SUFFIXES.values():
        name = name.removesuffix(suffix)
    return output.with_name(name + ".rejected.jsonl")


def run_backfill(
    input_path: Path,
    output_path: Path,
    config: EngineConfig,
    learned: LearnedWeights | None = None,
    progress: bool = True,
    engine: str = DEFAULT_ENGINE,
    max_line_bytes: int = MAX_LINE_BYTES,
    fmt: str = DEFAULT_FORMAT,
) -> BackfillSummary:
    """The log at ``input_path`` attributed into ``output_path`` in ``fmt`` (``pipeline.sinks.FORMATS``).
    JSON Lines go from the engine straight to the file; any other format takes them through a pipe
    (``pipeline.sinks.pumped``)."""
    # A file has no ingest times. The one real clock it has is now: an event dated after the backfill started
    # (plus the allowed skew) cannot have happened yet. Any real log lies wholly before that moment, so its
    # rewards do not depend on when the backfill runs.
    reference_ms = time.time_ns() // 1_000_000
    runner = backfill_engine(engine, config, learned, reference_ms)
    rejected = late = events_in = 0
    dumps = orjson.dumps
    started = time.perf_counter()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=os.path.getsize(input_path), unit="B", unit_scale=True, desc="backfill",
                   mininterval=0.5, leave=False)
    with ExitStack() as files:
        src = files.enter_context(open(input_path, "rb"))
        rej = files.enter_context(open(rejected_path(output_path), "wb"))
        # the engines write the reward lines to a descriptor: the file's for JSON Lines, else a pipe into the
        # format's writer, which converts beside the engine
        if fmt == "jsonl":
            fd = files.enter_context(open(output_path, "wb", buffering=0)).fileno()
        else:
            sink = open_rewards(output_path, fmt)
            files.callback(sink.close)
            fd = files.enter_context(pumped(sink))
        for piece, ahead in with_ahead(read_chunks(src, max_line_bytes)):
            if isinstance(piece, Overlong):
                events_in += 1
                rejected += 1
                rej.write(dumps({"line": piece.line, "field": "<line>",
                                 "reason": f"line of {piece.size:,} bytes is longer than the limit of "
                                           f"{max_line_bytes:,} bytes; only its first {len(piece.head)} are kept",
                                 "raw": piece.head.decode("utf-8", "replace")}) + b"\n")
                continue
            _, refused, n = runner.feed(piece.data, piece.first_line, fd, ahead)
            events_in += n
            for number, exc, raw in refused:
                rejected += 1
                late += isinstance(exc, LateEvent)
                rej.write(dumps({"line": number, "field": exc.field, "reason": exc.reason,
                                 "raw": raw.decode("utf-8", "replace").rstrip("\n")}) + b"\n")
            if bar is not None:
                bar.update(len(piece.data))
        runner.finish(fd)
    if bar is not None:
        bar.close()
    s = runner.stats()
    return BackfillSummary(
        events_in=events_in, rejected=rejected, late=late, rewards_out=runner.rewards_out,
        conversions_attributed=s.conversions_attributed, conversions_unattributed=s.conversions_unattributed,
        duplicates=s.duplicate_touchpoints + s.duplicate_conversions, finals=s.finals,
        total_attributed_minor=s.total_attributed_minor, base_currency=config.rates.base,
        seconds=time.perf_counter() - started,
    )
