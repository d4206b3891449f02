"""Durable replay-buffer state in RocksDB (rocksdict): experience rows, rewards waiting for their
touchpoint, and the consumer offsets those were read up to, all in one atomic write batch per poll.

Offsets live *with* the state rather than in Kafka's group commits: after a crash the buffer restarts at
exactly the position its stored state reflects, so nothing is lost and nothing is applied twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pipeline.events.jsonl import reward_from_json, reward_to_json
from pipeline.events.types import AttributedReward

_ROW = b"e:"
_PENDING = b"p:"
_OFFSET = b"o:"
_META = b"m:"


class ReplayStore:
    def __init__(self, path: str | Path) -> None:
        from rocksdict import Options, Rdict

        Path(path).mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        self.path = Path(path)
        self._db = Rdict(str(path), options=opts)

    def load(self) -> tuple[list[dict[str, Any]], dict[str, list[AttributedReward]], dict[tuple[str, int], int],
                            dict[str, Any]]:
        """(rows in seq order, pending rewards, offsets, meta)."""
        rows: list[dict[str, Any]] = []
        pending: dict[str, list[AttributedReward]] = {}
        offsets: dict[tuple[str, int], int] = {}
        meta: dict[str, Any] = {}
        for raw_key, raw_value in self._db.items():
            assert isinstance(raw_key, bytes) and isinstance(raw_value, bytes)  # raw mode
            key, value = raw_key, raw_value
            if key.startswith(_ROW):
                rows.append(orjson.loads(value))
            elif key.startswith(_PENDING):
                pending[key[len(_PENDING):].decode()] = [reward_from_json(d) for d in orjson.loads(value)]
            elif key.startswith(_OFFSET):
                topic, _, part = key[len(_OFFSET):].decode().rpartition(":")
                offsets[(topic, int(part))] = int(value)
            elif key.startswith(_META):
                meta[key[len(_META):].decode()] = orjson.loads(value)
        return rows, pending, offsets, meta  # row keys are big-endian seqs: iteration order is seq order

    def write(self, rows: list[dict[str, Any]], removed_seqs: list[int],
              pending: dict[str, list[AttributedReward] | None], offsets: dict[tuple[str, int], int],
              meta: dict[str, Any] | None = None) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for seq in removed_seqs:
            batch.delete(_ROW + seq.to_bytes(8, "big"))
        for row in rows:
            batch.put(_ROW + int(row["seq"]).to_bytes(8, "big"), orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY))
        for tid, rewards in pending.items():
            key = _PENDING + tid.encode()
            if rewards:
                batch.put(key, orjson.dumps([reward_to_json(r) for r in rewards]))
            else:
                batch.delete(key)
        for (topic, part), offset in offsets.items():
            batch.put(_OFFSET + f"{topic}:{part}".encode(), str(offset).encode())
        for name, value in (meta or {}).items():
            batch.put(_META + name.encode(), orjson.dumps(value))
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
