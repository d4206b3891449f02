"""The files attributed rewards are written to: JSON Lines (the reference form, ``pipeline.events.jsonl``) or
Parquet for analysts (``pipeline.sinks.parquet``).

Both take the rewards as JSON lines, the one form every producer of rewards already writes (the native backfill,
the Python engine, the reward reader), so a format is a file concern and never a second encoding of a reward.
Imports only the standard library and pyarrow: the backfills and the CLI choose a file here, nothing here knows
an engine, Kafka or a runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

FORMATS = ("jsonl", "parquet")
DEFAULT_FORMAT = "jsonl"
SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet"}


class RewardFile(Protocol):
    """Where reward lines go: ``write`` takes whole JSON lines (each ending in a newline)."""

    def write(self, lines: bytes, /) -> int: ...

    def close(self) -> None: ...


def open_rewards(path: Path, fmt: str) -> RewardFile:
    """A new rewards file of ``fmt`` (one of ``FORMATS``) at ``path``."""
    if fmt == "jsonl":
        return path.open("wb")
    if fmt == "parquet":
        from pipeline.sinks.parquet import ParquetRewards

        return ParquetRewards(path)
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
