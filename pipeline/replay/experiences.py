"""The replay buffer's state: experiences (touchpoints) joined with the attributed rewards that correct them.

Pure: numpy and the event types, no Kafka. The sink feeds it decoded events; tests and benchmarks drive it
directly. Composed the way TorchRL composes a replay buffer: storage (``storage.py``: columns, ids), the
reward join (``reward_join.py``), samplers (``samplers.py``: uniform, final only, prioritized) and the
provisional rewards (``provisional.py``). This class is the writer: it keeps them consistent as experiences
arrive, rewards change them and the ring evicts the oldest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.attribution.delay_model import DelayModel
from pipeline.events.revisions import LatestRevisions
from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
from pipeline.money.currency import MINOR_UNITS
from pipeline.replay.provisional import Feature, ProvisionalRewards, RewardSource
from pipeline.replay.reward_join import Pair, RewardJoin, first_paid
from pipeline.replay.samplers import FinalSlots, Priorities, PrioritizedSampler, draw_uniform
from pipeline.replay.storage import (
    ATTRIBUTED,
    CREDIT,
    FINAL_MINOR,
    FLAGS,
    SEQ,
    TOUCH,
    ExperienceStorage,
    channel_of,
    final_of,
)
from pipeline.units import HOUR_MS

IntArray = npt.NDArray[np.int64]

__all__ = ["ExperienceTable", "Priorities", "fold_rewards"]

_FINAL = int(RewardSource.FINAL)


class ExperienceTable:
    """At most ``capacity`` experiences; the oldest is evicted when a new touchpoint needs its slot."""

    def __init__(self, capacity: int, priorities: Priorities | None = None, final_only_priorities: bool = False,
                 max_pending: int | None = None) -> None:
        self.storage = ExperienceStorage(capacity)
        self.capacity = capacity
        self.join = RewardJoin(capacity if max_pending is None else max_pending)
        self.finals = FinalSlots(capacity)
        self.sampler = PrioritizedSampler(capacity, priorities) if priorities is not None else None
        self.final_only_priorities = final_only_priorities
        self.provisional = ProvisionalRewards(capacity)
        self.base_currency: str | None = None
        self._scale = 1.0
        self.dirty: set[int] = set()  # slots changed since the last persist
        self.removed_seqs: list[int] = []

    def __len__(self) -> int:
        return self.storage.size

    @property
    def size(self) -> int:
        return self.storage.size

    @property
    def channel_names(self) -> list[str]:
        return self.storage.channel_names

    @property
    def pending(self) -> dict[str, list[AttributedReward]]:
        return self.join.pending

    @property
    def n_final(self) -> int:
        return self.finals.n

    # ------------------------------------------------------------------ writes

    def add_touchpoint(self, tp: Touchpoint) -> int | None:
        """Store a new experience (evicting the oldest when full); a repeated (user, touchpoint id) is ignored."""
        st = self.storage
        if st.find(tp.user_id, tp.touchpoint_id) >= 0:
            return None
        slot = st.next_slot()
        if st.size == st.capacity:
            self._evict(slot)
        st.write(slot, tp)
        self.provisional.observe(slot, self.provisional.key(tp.channel, tp.campaign_id, tp.state), tp.timestamp_ms)
        if self.sampler is not None:
            self.sampler.fresh(slot, eligible=not self.final_only_priorities)
        self.dirty.add(slot)
        for reward in self.join.waiting(tp.touchpoint_id):
            self.apply_reward(reward)
        return slot

    def apply_reward(self, r: AttributedReward) -> bool:
        """Fold one attributed-reward event in; False if it changed nothing (stale, repeated, or waiting)."""
        if r.kind == RewardKind.UNATTRIBUTED:  # a conversion that paid nobody: no experience to change
            if r.revision == 0:
                self.join.conversions_unattributed += 1
            return False
        slot = self.storage.find(r.user_id, r.touchpoint_id)
        if slot < 0:
            self.join.park(r)
            return False
        if self.base_currency is None:
            self._set_currency(r.base_currency)
        st = self.storage
        if r.kind == RewardKind.FINAL:
            if st.is_final(slot):
                self.join.rewards_stale += 1
                return False
            st.set_final(slot, r.amount_minor)
            self.finals.add(slot)
            self.join.rewards_applied += 1
        else:
            change = self.join.pair(slot, r)
            if change is None:
                return False
            row = st.rec[slot]
            row[ATTRIBUTED] += change[0]
            row[CREDIT] = change[1]
        if self.sampler is not None:  # new information: drawn again before the trainer's TD error stands
            self.sampler.fresh(slot, eligible=not self.final_only_priorities or st.is_final(slot))
        self.dirty.add(slot)
        return True

    def set_priorities(self, index: npt.ArrayLike, priorities: npt.ArrayLike) -> int:
        """Trainer-set priorities (e.g. |TD error|) for a batch's ``index``; they hold until the experience's
        reward changes. Returns how many experiences were still held."""
        if self.sampler is None:
            raise RuntimeError("this buffer was created without prioritized sampling")
        seqs = np.asarray(index, dtype=np.int64)
        prios = np.asarray(priorities, dtype=np.float64)
        if seqs.shape != prios.shape:
            raise ValueError(f"{len(seqs)} indices but {len(prios)} priorities")
        if not (np.isfinite(prios).all() and (prios >= 0).all()):
            raise ValueError("priorities must be finite and non-negative")
        slots = seqs % self.capacity
        held = self.storage.held(slots, seqs)
        if self.final_only_priorities:
            held &= self.storage.finals_mask(slots)
        self.sampler.set(slots[held], prios[held])
        return int(held.sum())

    def _evict(self, slot: int) -> None:
        self.removed_seqs.append(self.storage.seq_of(slot))
        self.join.forget(slot)
        self.finals.discard(slot)
        if self.sampler is not None:
            self.sampler.remove(slot)
        self.storage.release(slot)

    def _set_currency(self, currency: str) -> None:
        self.base_currency = currency
        self._scale = 10.0 ** -MINOR_UNITS.get(currency, 2)

    # ------------------------------------------------------------------ reads

    def draw_uniform(self, rng: np.random.Generator, n: int, final_only: bool) -> IntArray:
        population = self.finals.n if final_only else self.size
        if population == 0:
            raise LookupError("no final experiences to sample" if final_only else "the buffer is empty")
        return self.finals.draw(rng, n) if final_only else draw_uniform(rng, n, population)

    def draw_prioritized(self, rng: np.random.Generator, n: int) -> tuple[IntArray, npt.NDArray[np.float64]]:
        """Slots drawn with P(i) ∝ p_i^α, and their importance weights."""
        assert self.sampler is not None
        return self.sampler.draw(rng, n, self.finals.n if self.final_only_priorities else self.size)

    def take(self, slots: IntArray, with_ids: bool = False) -> dict[str, npt.NDArray[Any]]:
        """The batch a trainer sees; money in base-currency units, delay in seconds (NaN: never paid).

        ``index`` (the experience's sequence number) identifies each row for :meth:`set_priorities`. The string
        ids are opt-in: they are built per row."""
        st = self.storage
        batch, touch = _gather(st, slots, self._scale)
        batch["states"] = st.states.take(slots)
        batch["actions"] = st.actions.take(slots)
        # provisional rewards: the delay model's estimate for rows nothing has credited yet (apart from money)
        if self.provisional.model is None:
            batch["expected_reward"] = np.zeros(len(slots))
            batch["reward"] = batch["attributed_reward"].copy()
        else:
            expected = self.provisional.expected(slots, touch)
            batch["expected_reward"] = expected
            batch["reward"] = np.where(batch["reward_source"] == 0, expected, batch["attributed_reward"])
        if with_ids:
            batch.update(st.names(slots))
        return batch

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Every held row: the batch columns with ids, plus campaign ids, times and exact minor units."""
        slots = np.arange(self.size, dtype=np.int64)
        batch = self.take(slots, with_ids=True)
        rec = self.storage.rec[: self.size]
        batch["campaign_ids"] = self.storage.campaign_ids(slots)
        batch["touch_time_ms"] = rec[:, TOUCH].copy()
        batch["first_credit_ms"] = rec[:, CREDIT].copy()
        batch["attributed_minor"] = rec[:, ATTRIBUTED].copy()
        batch["final_minor"] = rec[:, FINAL_MINOR].copy()
        return batch

    def set_delay_model(self, model: DelayModel | None, feature: Feature | None = None) -> None:
        """The model behind ``expected_reward`` (keys: channel, campaign, and ``feature(state)`` when given)."""
        st = self.storage

        def rekey() -> None:
            campaigns = st.campaign_ids(np.arange(st.size, dtype=np.int64))
            for slot in range(st.size):
                key = self.provisional.key(st.channel_name(slot), str(campaigns[slot]),
                                           st.states.get(slot))
                self.provisional.codes[slot] = self.provisional.code(key)

        self.provisional.set_model(model, feature, rekey)

    def experience(self, touchpoint_id: str, user_id: str | None = None) -> dict[str, Any] | None:
        """A held experience by its id (ids are scoped by user: without ``user_id``, the first held)."""
        st = self.storage
        slot = st.find(user_id, touchpoint_id) if user_id is not None else st.find_any_user(touchpoint_id)
        return None if slot < 0 else self.row(slot)

    def row(self, slot: int) -> dict[str, Any]:
        st = self.storage
        r = st.rec[slot]
        credit, touch, final = int(r[CREDIT]), int(r[TOUCH]), st.is_final(slot)
        pairs = self.join.pairs.get(slot) or {}
        return {
            "touchpoint_id": st.touchpoint_id(slot), "episode_id": st.episode_id(slot), "user_id": st.user_id(slot),
            "campaign_id": st.campaign_id(slot), "channel": st.channel_name(slot),
            "state": st.states.get(slot), "action": st.actions.get(slot), "original_reward": st.original(slot),
            "attributed_reward": int(r[ATTRIBUTED]) * self._scale, "attributed_minor": int(r[ATTRIBUTED]),
            "final": final, "final_minor": int(r[FINAL_MINOR]) if final else None, "touch_time_ms": touch,
            "delay_seconds": (credit - touch) / 1000.0 if credit >= 0 else None,
            "pairs": {cid: list(p) for cid, p in pairs.items()}, "seq": int(r[SEQ]),
        }

    def slots_of_user(self, user_id: str) -> IntArray:
        """The user's experiences, oldest touch first (a scan: for inspection, not for the hot path)."""
        return self.storage.slots_of_user(user_id)

    def statistics(self) -> dict[str, Any]:
        n = self.size
        rec = self.storage.rec[:n]
        converted = rec[:, CREDIT] >= 0
        n_conv = int(converted.sum())
        delays_h = (rec[converted, CREDIT] - rec[converted, TOUCH]) / HOUR_MS
        names = self.storage.channel_names
        attributed = rec[:, ATTRIBUTED] * self._scale
        channels = channel_of(rec[:, FLAGS])
        sums: list[float] = np.bincount(channels, weights=attributed, minlength=len(names)).tolist()
        counts: list[int] = np.bincount(channels, minlength=len(names)).tolist()
        j = self.join
        return {
            "size": n, "capacity": self.capacity, "final": self.finals.n, "converted": n_conv,
            "conversion_rate": n_conv / n if n else 0.0,
            "avg_time_to_conversion_hours": float(delays_h.mean()) if n_conv else 0.0,
            "total_attributed": float(attributed.sum()), "base_currency": self.base_currency,
            "total_original": float(self.storage.originals(rec).sum()),
            "per_channel": {name: {"experiences": int(counts[i]), "attributed": float(sums[i])}
                            for i, name in enumerate(names)},
            "rewards_applied": j.rewards_applied, "rewards_stale": j.rewards_stale,
            "conversions_attributed": len(j.conversion_refs), "pending_rewards": len(j.pending),
            "orphan_rewards_dropped": j.orphans_dropped, "evicted": j.evicted,
            "conversions_unattributed": j.conversions_unattributed,
        }

    # ------------------------------------------------------------------ persistence support

    def restore_row(self, row: dict[str, Any]) -> None:
        """Put back a row written by :meth:`row` (rows must come in ``seq`` order)."""
        tp = Touchpoint(row["touchpoint_id"], row["episode_id"], row["user_id"], row["campaign_id"], row["channel"],
                        row["touch_time_ms"], row["original_reward"], None, row["state"], row["action"])
        self.storage.next_seq = row["seq"]
        slot = self.add_touchpoint(tp)
        assert slot is not None
        if row.get("base_currency") and self.base_currency is None:
            self._set_currency(row["base_currency"])
        pairs = {cid: Pair(int(v[0]), int(v[1]), int(v[2]), bool(v[3])) for cid, v in row["pairs"].items()}
        self.join.restore(slot, pairs)
        rec = self.storage.rec
        rec[slot, ATTRIBUTED] = row["attributed_minor"]
        rec[slot, CREDIT] = first_paid(pairs)
        if row["final"]:
            self.storage.set_final(slot, row["final_minor"])
            self.finals.add(slot)
        if self.sampler is not None:
            self.sampler.fresh(slot, eligible=not self.final_only_priorities or bool(row["final"]))

    def restore(self, rows: Sequence[dict[str, Any]], pending: dict[str, list[AttributedReward]],
                counters: dict[str, int]) -> list[int]:
        """Load what the store kept (rows in ``seq`` order); returns the seqs evicted on the way (a capacity
        smaller than last time keeps the newest), which the store must delete. Nothing loaded counts as a
        change to persist."""
        for row in rows:
            self.restore_row(row)
        self.join.set_counters(counters)
        self.join.pending.update(pending)
        evicted = list(self.removed_seqs)
        self.discard_changes()
        return evicted

    def counters(self) -> dict[str, int]:
        return self.join.counters()

    def discard_changes(self) -> None:
        """Forget what changed (nothing to persist, or it was just loaded)."""
        self.dirty = set()
        self.removed_seqs = []
        self.join.dirty_pending = set()

    def take_changes(self) -> tuple[list[dict[str, Any]], list[int], dict[str, list[AttributedReward] | None]]:
        """Rows changed, seqs evicted and pending entries changed since the last call (for the store)."""
        rows = [self.row(s) for s in self.dirty]
        for r in rows:
            r["base_currency"] = self.base_currency
        removed = self.removed_seqs
        pend = {tid: self.join.pending.get(tid) for tid in self.join.dirty_pending}
        self.discard_changes()
        return rows, removed, pend


def fold_rewards(rewards: Sequence[AttributedReward]) -> dict[str, int]:
    """Each touchpoint's attributed total in base minor units under the topic's rules: a reference for checks
    (the table applies the same rules incrementally)."""
    latest: LatestRevisions[tuple[str, str, str], int] = LatestRevisions()
    for r in rewards:
        if r.kind not in (RewardKind.FINAL, RewardKind.UNATTRIBUTED):
            latest.offer((r.user_id, r.touchpoint_id, r.conversion_id or ""), r.revision, r.amount_minor)
    totals: dict[str, int] = {}
    for (_, tid, _), amount in latest.items():
        totals[tid] = totals.get(tid, 0) + amount
    return totals


def _gather_numpy(st: ExperienceStorage, slots: IntArray, scale: float
                  ) -> tuple[dict[str, npt.NDArray[Any]], IntArray]:
    """The record's batch columns (and the touch times) in numpy: about twenty calls."""
    rec = np.take(st.rec, slots, axis=0)  # np.take: faster than rec[slots] for row gathers
    credit = rec[:, CREDIT]
    flags = rec[:, FLAGS]
    final = final_of(flags)
    unpaid = credit < 0
    delay = (credit - rec[:, TOUCH]) * 0.001
    delay[unpaid] = np.nan
    source = (~unpaid).view(np.int8)  # RewardSource: PROVISIONAL 0, ATTRIBUTED 1, FINAL 2
    source[final] = _FINAL
    return {"index": rec[:, SEQ].copy(), "attributed_reward": rec[:, ATTRIBUTED] * scale,
            "original_reward": st.originals(rec), "final": final, "delay_seconds": delay, "channel": channel_of(flags),
            "reward_source": source}, rec[:, TOUCH]


def _gather_native(st: ExperienceStorage, slots: IntArray, scale: float
                   ) -> tuple[dict[str, npt.NDArray[Any]], IntArray]:
    """The same columns in one pass of the native core, into three allocations (a batch's columns are slices
    of them: contiguous, and each its own array to the trainer)."""
    n = len(slots)
    floats = np.empty(3 * n)
    ints = np.empty(3 * n, np.int64)
    small = np.empty(2 * n, np.int8)
    batch: dict[str, npt.NDArray[Any]] = {
        "index": ints[:n], "attributed_reward": floats[:n], "original_reward": floats[n:2 * n],
        "final": small[:n], "delay_seconds": floats[2 * n:], "channel": ints[n:2 * n], "reward_source": small[n:]}
    touch = ints[2 * n:]
    _native_gather(st.rec, slots, scale, batch["index"], batch["attributed_reward"], batch["original_reward"],
                   batch["final"].view(np.uint8), batch["delay_seconds"], batch["channel"], batch["reward_source"],
                   touch)
    batch["final"] = batch["final"].view(np.bool_)
    return batch, touch


try:
    from pipeline import _native
except ImportError:  # pragma: no cover - without the native build
    _gather = _gather_numpy
else:
    _native_gather = _native.gather_batch  # type: ignore[attr-defined,unused-ignore]
    _gather = _gather_native
