"""Journey values as stored in RocksDB and the changelog: the journey, and the outbox of rewards its write made.

Layout (formats 2 and 3)::

    u8 version | u32 body length | body | u32 outbox count | (u32 length | reward record)*

An empty body means the journey is gone and the record only carries its last outputs. Outbox entries are the
attributed-reward records already Avro-encoded (the very records the step hands the worker to send, its
``reward_records``), so restore finds them again and sends them (see ``redelivery``) without decoding anything.

- Format 2, written by the Python engine: the body is the journey as compact JSON (orjson; touchpoints appear
  once and splits refer to them by index).
- Format 3, written by the native engine (native/src/codec.rs): the same structure in binary, zig-zag varints,
  length-prefixed UTF-8 and little-endian doubles, about half the size.
- Format 1 (a JSON array holding journey and outbox together) is still read, so state written before these
  formats restores.

Both engines read every format, so a worker can switch engines on existing state. A value of an unknown format
is refused with a clear error. Not pickle: a changelog topic is input, and unpickling input is code execution.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import orjson

from pipeline.engine.journey import Journey, Split, Touch
from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind

FORMAT_VERSION = 2
_U32 = struct.Struct("<I")
_LEGACY_JSON = ord("[")  # format 1 was a bare JSON array


class UnknownJourneyFormat(ValueError):
    """A stored value written by a format this code does not know (a newer version, or not a journey)."""


def encode(journey: Journey | None, outbox: Sequence[bytes]) -> bytes:
    """``journey`` None means the journey is gone; the record then carries only its last outputs."""
    body = b"" if journey is None else orjson.dumps(_body(journey))
    parts = [bytes((FORMAT_VERSION,)), _U32.pack(len(body)), body, _U32.pack(len(outbox))]
    for record in outbox:
        parts.append(_U32.pack(len(record)))
        parts.append(record)
    return b"".join(parts)


def _body(journey: Journey) -> list[Any]:
    pool: dict[str, int] = {}
    touches: list[list[Any]] = []

    def ref(t: Touch) -> int:
        i = pool.get(t.touchpoint_id)
        if i is None:
            i = pool[t.touchpoint_id] = len(touches)
            touches.append(list(t))
        return i

    refs = [ref(t) for t in journey.touches]
    splits = [
        [s.conversion_id, s.event, s.time_ms, s.currency, s.value_minor, s.base_minor, s.model, s.used_model,
         s.revision, [ref(t) for t in s.touches], s.shares, s.local_shares, s.refund_of, s.refunded_minor,
         s.refunded_base]
        for s in journey.splits
    ]
    return [touches, refs, journey.earned, splits]


def _journey(touches: list[Any], refs: list[int], earned: list[int], splits: list[Any]) -> Journey | None:
    if not refs and not splits:
        return None
    pool = [Touch(*t) for t in touches]
    return Journey([pool[i] for i in refs], list(earned), [
        Split(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], tuple(pool[i] for i in s[9]), tuple(s[10]),
              tuple(s[11]), s[12], s[13], s[14])
        for s in splits
    ])


BINARY_VERSION = 3
_F64 = struct.Struct("<d")


def _version(data: bytes) -> int:
    if not data:
        raise UnknownJourneyFormat("empty journey value")
    if data[0] == _LEGACY_JSON:
        return 1
    if data[0] not in (FORMAT_VERSION, BINARY_VERSION):
        raise UnknownJourneyFormat(f"journey value of format {data[0]}; this worker reads formats 1, 2 and 3 "
                                   "(a newer worker wrote it? run that version)")
    return data[0]


def decode_journey(data: bytes) -> Journey | None:
    version = _version(data)
    if version == 1:
        body = orjson.loads(data)
        return _journey(body[1], body[2], body[3], body[4])
    (n,) = _U32.unpack_from(data, 1)
    if n == 0:
        return None
    if version == BINARY_VERSION:
        return _journey(*_binary_body(data[5:5 + n]))
    return _journey(*orjson.loads(data[5:5 + n]))


class _Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def int(self) -> int:
        n = shift = 0
        while True:
            b = self.data[self.at]
            self.at += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return (n >> 1) ^ -(n & 1)
            shift += 7

    def str(self) -> str:
        n = self.int()
        s = self.data[self.at:self.at + n].decode()
        self.at += n
        return s

    def f64(self) -> float:
        x: float = _F64.unpack_from(self.data, self.at)[0]
        self.at += 8
        return x


def _binary_body(body: bytes) -> tuple[list[Any], list[int], list[int], list[Any]]:
    """Format 3's body as the JSON body's lists (see native/src/codec.rs for the layout)."""
    r = _Reader(body)
    pool = [[r.int(), r.str(), r.str(), r.str(), r.str(), r.f64()] for _ in range(r.int())]
    refs, earned = [], []
    for _ in range(r.int()):
        refs.append(r.int())
        earned.append(r.int())
    splits = []
    for _ in range(r.int()):
        head = [r.str(), r.str(), r.int(), r.str(), r.int(), r.int(), r.str(), r.str(), r.int()]
        k = r.int()
        touch_refs = [r.int() for _ in range(k)]
        shares = [r.int() for _ in range(k)]
        local = [r.int() for _ in range(k)]
        flag = body[r.at]
        r.at += 1
        refund_of = r.str() if flag else None
        splits.append([*head, touch_refs, shares, local, refund_of, r.int(), r.int()])
    if r.at != len(body):
        raise UnknownJourneyFormat(f"corrupt journey value: {len(body) - r.at} trailing bytes")
    return pool, refs, earned, splits


_REWARDS = AvroCodec("attributed_reward")


def has_journey(data: bytes) -> bool:
    """False for a value that only carries the last outputs of a journey that is gone."""
    if _version(data) == 1:
        return decode_journey(data) is not None
    n: int = _U32.unpack_from(data, 1)[0]
    return n > 0


def without_outbox(data: bytes) -> bytes:
    """The journey value with an empty outbox (its rewards published): what a store keeps between steps."""
    if _version(data) == 1:
        return encode(decode_journey(data), ())
    (n,) = _U32.unpack_from(data, 1)
    return data[:5 + n] + _U32.pack(0)


def outbox(data: bytes) -> list[bytes]:
    """The reward records a journey value carries, ready to publish."""
    if _version(data) == 1:
        legacy = [AttributedReward(RewardKind(r[0]), *r[1:]) for r in orjson.loads(data)[5]]
        return [_REWARDS.encode(reward_to_record(r)) for r in legacy]
    (n,) = _U32.unpack_from(data, 1)
    at = 5 + n
    (count,) = _U32.unpack_from(data, at)
    at += 4
    records = []
    for _ in range(count):
        (size,) = _U32.unpack_from(data, at)
        at += 4
        records.append(data[at:at + size])
        at += size
    return records


Reward = tuple[bytes, bytes]  # (user key, attributed-reward record)
