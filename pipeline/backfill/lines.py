"""A JSON Lines file in chunks of whole lines, memory bounded by the line limit.

Blocks are read no larger than ``max_line_bytes``, so within a block only its first line (the carry of the
previous block plus the block's head) can be over the limit; every other complete line fits. A line over the
limit is not kept: its bytes are skipped up to its newline and it is reported with its size and first bytes,
so an oversized line costs neither memory several times its size nor a rejected entry as large as itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np

MAX_LINE_BYTES = 1 << 20
HEAD_BYTES = 256  # how much of an overlong line its report keeps


@dataclass(frozen=True)
class Chunk:
    data: bytes  # whole lines, each ending in a newline except perhaps the file's last
    first_line: int  # number of its first line (from 1)


@dataclass(frozen=True)
class Overlong:
    line: int
    size: int  # bytes, newline excluded
    head: bytes


def read_chunks(fh: IO[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Chunk | Overlong]:
    line_no = 1  # number of the first line not yet handed out
    carry = b""  # the start of a line whose newline is still to come (never over the limit)
    skipping: Overlong | None = None  # an overlong line whose newline is still to come
    while True:
        block = fh.read(max_line_bytes)
        if skipping is not None:
            cut = block.find(b"\n")
            if cut < 0 and block:
                skipping = Overlong(skipping.line, skipping.size + len(block), skipping.head)
                continue
            yield Overlong(skipping.line, skipping.size + max(cut, 0), skipping.head)
            line_no, skipping = skipping.line + 1, None
            if cut < 0:
                return
            block = block[cut + 1:]
        if not block:
            if carry:
                yield Chunk(carry, line_no)
            return
        data = carry + block
        first = data.find(b"\n")
        if first < 0:
            if len(data) > max_line_bytes:
                skipping, carry = Overlong(line_no, len(data), data[:HEAD_BYTES]), b""
            else:
                carry = data
            continue
        if first > max_line_bytes:
            yield Overlong(line_no, first, data[:HEAD_BYTES])
            line_no += 1
            data = data[first + 1:]
        end = data.rfind(b"\n")
        if end < 0:
            carry = data
            continue
        whole, carry = data[:end + 1], data[end + 1:]
        yield Chunk(whole, line_no)
        line_no += newlines(whole)


def with_ahead(pieces: Iterator[Chunk | Overlong]) -> Iterator[tuple[Chunk | Overlong, bytes | None]]:
    """Each piece with the bytes of the chunk that follows it (None if an overlong line or the end does): what a
    backfill engine's ``feed`` can start parsing while it runs the piece (``ahead``). Reads one piece early."""
    piece = next(pieces, None)
    while piece is not None:
        following = next(pieces, None)
        yield piece, following.data if isinstance(following, Chunk) else None
        piece = following


def newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, several times as fast (docs/benchmarks.md): ``bytes.count`` showed up in
    `rewardstream fit`'s profile. The comparison makes a temporary of the chunk's size."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
