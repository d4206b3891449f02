"""Journey values as stored in RocksDB and the changelog: the journey plus its outbox.

Compact JSON arrays (orjson): touchpoints appear once per record and splits refer to them by index.
Not pickle: a changelog topic is input, and unpickling input is code execution.
"""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.engine.journey import Journey, Split, Touch
from pipeline.events.types import AttributedReward, RewardKind

FORMAT_VERSION = 1


def encode(journey: Journey | None, outbox: list[AttributedReward]) -> bytes:
    """``journey`` None means the journey is gone; the record then carries only its last outputs."""
    pool: dict[str, int] = {}
    touches: list[list[Any]] = []

    def ref(t: Touch) -> int:
        i = pool.get(t.touchpoint_id)
        if i is None:
            i = pool[t.touchpoint_id] = len(touches)
            touches.append(list(t))
        return i

    body: list[Any] = [FORMAT_VERSION, touches, [], [], [], [list(r) for r in outbox]]
    if journey is not None:
        body[2] = [ref(t) for t in journey.touches]
        body[3] = journey.earned
        body[4] = [
            [s.conversion_id, s.event, s.time_ms, s.currency, s.value_minor, s.base_minor, s.model, s.used_model,
             s.revision, [ref(t) for t in s.touches], s.shares, s.local_shares, s.refund_of, s.refunded_minor,
             s.refunded_base]
            for s in journey.splits
        ]
    return orjson.dumps(body)


def decode(data: bytes) -> tuple[Journey | None, list[AttributedReward]]:
    body = orjson.loads(data)
    if body[0] != FORMAT_VERSION:
        raise ValueError(f"journey format {body[0]} is not {FORMAT_VERSION}")
    pool = [Touch(*t) for t in body[1]]
    outbox = [AttributedReward(RewardKind(r[0]), *r[1:]) for r in body[5]]
    if not body[2] and not body[4]:
        return None, outbox
    splits = [
        Split(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], tuple(pool[i] for i in s[9]), tuple(s[10]),
              tuple(s[11]), s[12], s[13], s[14])
        for s in body[4]
    ]
    return Journey([pool[i] for i in body[2]], list(body[3]), splits), outbox


def decode_outbox(data: bytes) -> list[AttributedReward]:
    return decode(data)[1]
