"""Columnar storage of experiences: one fixed-size record per slot, ids interned or hashed, states and actions
as float32 matrices.

Bytes per row, without the state and action values: the 56-byte record, the touchpoint and user ids' UTF-8
bytes (fixed-width columns as wide as the longest id held), two int32 codes (episode, campaign), the id
index's 8-byte hash and 8–16 bytes of table. Strings repeated across many rows (episodes, campaigns) are
stored once; channels keep their codes for good (a batch's ``channel`` column indexes ``channel_names``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.events.types import Touchpoint
from pipeline.replay.id_index import IdIndex
from pipeline.replay.interner import Interner

IntArray = npt.NDArray[np.int64]

# Everything a batch reads per row, side by side in one int64 row, gathered with one np.take: a draw from a
# million slots is memory-latency bound, one row per cache line beats one miss per column, and np.take of a
# plain 2-D array is several times faster than of a structured dtype.
SEQ = 0          # experiences ever added before this one; -1: empty slot
ATTRIBUTED = 1   # exact sum of the latest revision of each pair, base currency minor units
FINAL_MINOR = 2  # the final total once final
ORIGINAL = 3     # the immediate reward the agent saw (float64 bits)
TOUCH = 4        # touch time, epoch ms
CREDIT = 5       # the first conversion that paid it (epoch ms); -1: none
FLAGS = 6        # channel code << 1 | final (read through channel_of / final_of)
WIDTH = 7


def channel_of(flags: Any) -> Any:
    """Channel codes from FLAGS values (a scalar or an array)."""
    return flags >> 1


def final_of(flags: Any) -> Any:
    """Whether FLAGS values mark a final row (a scalar or an array)."""
    return (flags & 1) > 0


class VectorColumn:
    """States or actions: a float32 matrix while every value is a numeric vector of one length or missing
    (a row of NaN), so a batch is a 2-D array; an object array of JSON values as soon as one is neither."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.matrix: npt.NDArray[np.float32] | None = None
        self.objects: npt.NDArray[Any] | None = None
        self.size = 0  # slots written so far (slots fill 0..capacity-1 in order)

    def set(self, slot: int, value: Any) -> None:
        self.size = max(self.size, slot + 1)
        if self.objects is not None:
            self.objects[slot] = value
            return
        if value is None:  # a missing vector is a row of NaN while the column is a matrix
            if self.matrix is not None:
                self.matrix[slot] = np.nan
            return
        if _is_vector(value) and (self.matrix is None or self.matrix.shape[1] == len(value)):
            if self.matrix is None:
                self.matrix = np.full((self.capacity, len(value)), np.nan, dtype=np.float32)
            self.matrix[slot] = value
            return
        objects = np.empty(self.capacity, dtype=object)
        if self.matrix is not None:
            for i in range(self.size):
                objects[i] = self.get(i)
        self.matrix = None
        self.objects = objects
        objects[slot] = value

    def get(self, slot: int) -> Any:
        if self.matrix is not None:
            row = self.matrix[slot]
            return None if np.isnan(row).all() else row.tolist()
        return None if self.objects is None else self.objects[slot]

    def take(self, slots: IntArray) -> npt.NDArray[Any]:
        if self.matrix is not None:
            return np.take(self.matrix, slots, axis=0)
        if self.objects is None:
            return np.full(len(slots), None, dtype=object)
        return self.objects[slots]


def _is_vector(value: Any) -> bool:
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value))


class BytesColumn:
    """Strings unique to a row (touchpoint ids, user ids) as UTF-8 in a fixed-width bytes column, widened
    (copied once) when a longer one arrives: a Python string per row would cost its object header on top."""

    def __init__(self, capacity: int) -> None:
        self.values: npt.NDArray[np.bytes_] = np.zeros(capacity, dtype="S8")

    def set(self, slot: int, value: str) -> None:
        raw = value.encode()
        width = self.values.dtype.itemsize
        if len(raw) > width:
            self.values = self.values.astype(f"S{max(len(raw), 2 * width)}")
        self.values[slot] = raw

    def get(self, slot: int) -> str:
        return bytes(self.values[slot]).decode()

    def take(self, slots: IntArray) -> npt.NDArray[Any]:
        return np.array([b.decode() for b in np.take(self.values, slots).tolist()], dtype=object)


class ExperienceStorage:
    """A ring of ``capacity`` slots; slot = seq % capacity. The writer (the table) evicts before it reuses."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.size = 0
        self.next_seq = 0
        self.rec = np.zeros((capacity, WIDTH), dtype=np.int64)
        self.rec[:, SEQ] = -1
        self.rec[:, CREDIT] = -1
        self.tids = BytesColumn(capacity)
        self.uids = BytesColumn(capacity)  # users: often only a few rows each, so bytes beat interning
        self.episode_codes = np.zeros(capacity, dtype=np.int32)
        self.campaign_codes = np.zeros(capacity, dtype=np.int32)
        self.episodes, self.campaigns = Interner(), Interner()
        self.channel_names: list[str] = []
        self._channel_code: dict[str, int] = {}
        self.states = VectorColumn(capacity)
        self.actions = VectorColumn(capacity)
        self.index = IdIndex(capacity)

    # ------------------------------------------------------------------ ids

    def find(self, user_id: str, touchpoint_id: str) -> int:
        """The slot holding the user's touchpoint, −1 if none (ids are scoped by user)."""
        tids, uids = self.tids.values, self.uids.values
        raw, user = touchpoint_id.encode(), user_id.encode()
        return self.index.find(hash((user_id, touchpoint_id)), lambda s: bool(tids[s] == raw and uids[s] == user))

    def find_any_user(self, touchpoint_id: str) -> int:
        """A slot holding this touchpoint id for some user (a scan: for inspection)."""
        hits = np.flatnonzero(self.tids.values[: self.size] == touchpoint_id.encode())
        return int(hits[0]) if len(hits) else -1

    def touchpoint_id(self, slot: int) -> str:
        return self.tids.get(slot)

    def user_id(self, slot: int) -> str:
        return self.uids.get(slot)

    # ------------------------------------------------------------------ writes

    def next_slot(self) -> int:
        return self.next_seq % self.capacity

    def write(self, slot: int, tp: Touchpoint) -> None:
        """Fill ``slot`` (empty, or released by :meth:`release`) with a new experience."""
        if slot >= self.size:
            self.size = slot + 1
        self.rec[slot] = (self.next_seq, 0, 0, _bits(tp.immediate_reward), tp.timestamp_ms, -1,
                          self.channel_code(tp.channel) << 1)
        self.next_seq += 1
        self.tids.set(slot, tp.touchpoint_id)
        self.uids.set(slot, tp.user_id)
        self.episode_codes[slot] = self.episodes.acquire(tp.episode_id)
        self.campaign_codes[slot] = self.campaigns.acquire(tp.campaign_id)
        self.states.set(slot, tp.state)
        self.actions.set(slot, tp.action)
        self.index.insert(hash((tp.user_id, tp.touchpoint_id)), slot)

    def release(self, slot: int) -> None:
        """Forget the experience in ``slot`` (its ids, its index entry) before the slot is reused."""
        self.index.remove(slot)
        self.episodes.release(int(self.episode_codes[slot]))
        self.campaigns.release(int(self.campaign_codes[slot]))

    def channel_code(self, channel: str) -> int:
        code = self._channel_code.get(channel)
        if code is None:
            code = self._channel_code[channel] = len(self.channel_names)
            self.channel_names.append(channel)
        return code

    # ------------------------------------------------------------------ reads

    def seq_of(self, slot: int) -> int:
        return int(self.rec[slot, SEQ])

    def is_final(self, slot: int) -> bool:
        return bool(int(self.rec[slot, FLAGS]) & 1)  # final_of on a Python int: the per-reward path

    def finals_mask(self, slots: IntArray) -> npt.NDArray[np.bool_]:
        mask: npt.NDArray[np.bool_] = final_of(self.rec[slots, FLAGS])
        return mask

    def channel_name(self, slot: int) -> str:
        return self.channel_names[int(channel_of(self.rec[slot, FLAGS]))]

    def episode_id(self, slot: int) -> str:
        return self.episodes.name(int(self.episode_codes[slot]))

    def campaign_id(self, slot: int) -> str:
        return self.campaigns.name(int(self.campaign_codes[slot]))

    def original(self, slot: int) -> float:
        return float(self.originals(self.rec[slot : slot + 1])[0])

    def set_final(self, slot: int, amount_minor: int) -> None:
        self.rec[slot, FLAGS] |= 1
        self.rec[slot, FINAL_MINOR] = amount_minor

    def held(self, slots: IntArray, seqs: IntArray) -> npt.NDArray[np.bool_]:
        """Which (slot, seq) pairs still hold that experience."""
        held: npt.NDArray[np.bool_] = self.rec[slots, SEQ] == seqs
        return held

    def originals(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The ORIGINAL column of gathered rows as floats."""
        return np.ascontiguousarray(rows[:, ORIGINAL]).view(np.float64)

    def names(self, slots: IntArray) -> dict[str, npt.NDArray[Any]]:
        """The string ids of rows, as object arrays."""
        return {
            "touchpoint_ids": self.tids.take(slots),
            "episode_ids": np.take(self.episodes.array, np.take(self.episode_codes, slots)),
            "user_ids": self.uids.take(slots),
            "channels": np.take(np.array(self.channel_names, dtype=object), channel_of(self.rec[slots, FLAGS])),
        }

    def campaign_ids(self, slots: IntArray) -> npt.NDArray[Any]:
        ids: npt.NDArray[Any] = np.take(self.campaigns.array, np.take(self.campaign_codes, slots))
        return ids

    def slots_of_user(self, user_id: str) -> IntArray:
        slots = np.flatnonzero(self.uids.values[: self.size] == user_id.encode())
        order = np.argsort(self.rec[slots, TOUCH], kind="stable")
        result: IntArray = slots[order]
        return result


def _bits(value: float) -> int:
    """A float64's bits as an int64 (the ORIGINAL column)."""
    return int(np.float64(value).view(np.int64))
