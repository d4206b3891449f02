"""The engine over a log: chunks of JSON Lines in, reward JSON lines out (the backfill's and fit's entry point).

``PythonBackfill`` is the reference (the pure engine, one line at a time); ``pipeline.native.NativeBackfill``
runs the same semantics in Rust. Both take a chunk of whole lines and return the reward lines it produced, the
lines refused (number, error, raw bytes) and how many non-blank lines it held; ``finish`` closes every window.
"""

from __future__ import annotations

import os
from typing import Protocol

import orjson

from pipeline.attribution.learned import LearnedWeights
from pipeline.engine import FILE_QUORUM, AttributionEngine, EngineConfig, EngineStats
from pipeline.errors import InvalidEvent
from pipeline.events.jsonl import reward_to_json
from pipeline.events.parse import parse_line
from pipeline.events.types import AttributedReward

Refused = tuple[int, InvalidEvent, bytes]  # (line number, why, the line)


class BackfillEngine(Protocol):
    @property
    def rewards_out(self) -> int: ...

    def feed(self, chunk: bytes, first_line: int, out_fd: int | None = None, ahead: bytes | None = None
             ) -> tuple[bytes, list[Refused], int]:
        """Reward lines are written to ``out_fd`` when given (an unbuffered file), else returned. ``ahead``: the
        chunk the caller will feed next, if it knows it (the native engine starts parsing it meanwhile)."""

    def finish(self, out_fd: int | None = None) -> bytes: ...

    def stats(self) -> EngineStats: ...

    def watermark(self) -> int | None:
        """The event time the input has certainly reached, minus the lateness (what ``finish`` goes past)."""


def _emit(data: bytes, out_fd: int | None) -> bytes:
    if out_fd is None:
        return data
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]
    return b""


class PythonBackfill:
    """The reference: ``AttributionEngine.process`` on each line, ``orjson`` out."""

    def __init__(self, config: EngineConfig, learned: LearnedWeights | None, reference_ms: int) -> None:
        self.engine = AttributionEngine(config, learned, quorum=FILE_QUORUM)
        self.reference_ms = reference_ms
        self.rewards_out = 0

    def _lines(self, rewards: list[AttributedReward]) -> bytes:
        self.rewards_out += len(rewards)
        dumps = orjson.dumps
        return b"".join(dumps(reward_to_json(r)) + b"\n" for r in rewards)

    def feed(self, chunk: bytes, first_line: int, out_fd: int | None = None, ahead: bytes | None = None
             ) -> tuple[bytes, list[Refused], int]:
        out: list[bytes] = []
        refused: list[Refused] = []
        events_in = 0
        lines = chunk.split(b"\n")
        last = lines.pop()  # b"" when the chunk ends with a newline
        lines = [line + b"\n" for line in lines] + ([last] if last else [])
        for number, line in enumerate(lines, first_line):
            if not line.strip():
                continue
            events_in += 1
            try:
                out.append(self._lines(self.engine.process(parse_line(line), self.reference_ms)))
            except InvalidEvent as exc:
                refused.append((number, exc, line))
        return _emit(b"".join(out), out_fd), refused, events_in

    def finish(self, out_fd: int | None = None) -> bytes:
        return _emit(self._lines(self.engine.flush()), out_fd)

    def stats(self) -> EngineStats:
        return self.engine.stats

    def watermark(self) -> int | None:
        return self.engine.watermark
