"""Conversion feeds from files: JSON Lines or CSV rows to the conversions topic, validated row by row.

Bad rows are written to a rejected-lines file (line number, reason, the raw line) and the rest go on: one
typo in a nightly export must not hold back the other million conversions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_conversion
from pipeline.events.types import Conversion

CSV_COLUMNS = ("conversion_id", "user_id", "event", "value", "currency", "timestamp", "refund_of", "model")


@dataclass
class IngestSummary:
    read: int = 0
    sent: int = 0
    rejected: int = 0


def detect_format(path: Path, given: str | None) -> str:
    if given:
        return given
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def rows(fh: BinaryIO, fmt: str) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, raw line, parsed object or the exception that parsing raised)."""
    if fmt == "jsonl":
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, line, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, line, InvalidEvent("<json>", f"not JSON: {exc}")
        return
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip() for h in header]
    missing = {"conversion_id", "user_id", "event", "value", "currency", "timestamp"} - set(names)
    if missing:
        raise InvalidEvent("<csv header>", f"missing columns {sorted(missing)}; expected {list(CSV_COLUMNS)}")
    for cells in reader:
        number = reader.line_num
        raw = ",".join(cells).encode()
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            yield number, raw, InvalidEvent("<csv>", f"{len(cells)} cells, the header has {len(names)}")
            continue
        obj: dict[str, Any] = {n: (c if c.strip() != "" else None) for n, c in zip(names, cells, strict=True)}
        ts = obj.get("timestamp")
        if isinstance(ts, str) and ts.strip().lstrip("-").isdigit():
            obj["timestamp"] = int(ts)
        yield number, raw, obj


def parse_row(obj: Any) -> Conversion:
    if isinstance(obj, Exception):
        raise obj
    if not isinstance(obj, dict):
        raise InvalidEvent("<row>", f"must be a JSON object, got {type(obj).__name__}")
    if obj.get("type", "conversion") != "conversion":
        raise InvalidEvent("type", f"a conversion feed takes conversions, got {obj.get('type')!r}")
    return parse_conversion(obj)
