"""Where attributed rewards go besides their topic.

Files (this module): JSON Lines, the reference form (``pipeline.events.jsonl``), or Parquet for analysts
(``pipeline.sinks.parquet``). Both take the rewards as JSON lines, the one form every producer of rewards already
writes (the native backfill, the Python engine, the reward reader), so a format is a file concern and never a
second encoding of a reward; the backfills and the CLI choose a file here. This module imports only the standard
library (pyarrow lazily): nothing here knows an engine, Kafka or a runtime.

Stores fed from the attributed-reward topic: the PostgreSQL reward ledger (``pipeline.sinks.postgres``) and the
Redis reward cache (``pipeline.sinks.redis_cache``). Kafka stays the source of truth; each keeps its consumed
offsets in its own store, written with the data, and resumes from them. They may import events, the Kafka
adapters (``pipeline.kafka``) and settings; nothing above (no runtimes, no CLI).

May import: ``pipeline.errors``, ``pipeline.events``, ``pipeline.kafka``, ``pipeline.settings``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

FORMATS = ("jsonl", "parquet")
DEFAULT_FORMAT = "jsonl"
SUFFIXES = {"jsonl": ".jsonl", "parquet": ".parquet"}


class RewardFile(Protocol):
    """Where reward lines go: ``write`` takes the JSON lines as a byte stream, in pieces of any size."""

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


@contextmanager
def pumped(out: RewardFile, read_bytes: int = 1 << 20) -> Iterator[int]:
    """A file descriptor whose bytes go to ``out``: the write end of a pipe a thread drains into it.

    The engines write JSON Lines to a descriptor from a thread of their own (the native backfill's writer); a
    pipe keeps that path for any format, and the conversion runs beside the engine instead of after it. The
    pipe's buffer is the back pressure: a slow ``out`` makes the engine's writer wait, never memory grow. If
    ``out`` fails, the read end is closed, so the engine's next write fails (EPIPE) instead of waiting forever;
    the failure is raised here once the writer is done."""
    r, w = os.pipe()
    failed: list[BaseException] = []

    def drain() -> None:
        try:
            while data := os.read(r, read_bytes):
                out.write(data)
        except BaseException as exc:
            failed.append(exc)
        finally:
            os.close(r)

    thread = threading.Thread(target=drain, name="reward-pump", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        os.close(w)
        thread.join()
        if failed:
            raise failed[0]
