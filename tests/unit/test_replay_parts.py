"""The replay buffer's parts on their own: the id index under ring churn, the interner, the priority trees."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.replay.id_index import IdIndex
from pipeline.replay.interner import Interner
from pipeline.replay.priority_trees import NumpyPriorityTrees, priority_trees


def test_id_index_agrees_with_a_dict_through_inserts_and_evictions() -> None:
    capacity = 64
    index = IdIndex(capacity)
    keys: list[int | None] = [None] * capacity
    rng = random.Random(5)
    held: dict[int, int] = {}
    for seq in range(5000):
        slot = seq % capacity
        if keys[slot] is not None:
            index.remove(slot)
            del held[keys[slot]]  # type: ignore[arg-type]
        # small hash space: many collisions and long probe runs that deletions must repair
        h = rng.randrange(200) * 7 + (seq << 20)
        if seq % 3 == 0:
            h = rng.randrange(32)  # home cells collide with each other
        while h in held:
            h += 1 << 40
        index.insert(h, slot)
        keys[slot] = h
        held[h] = slot
        for key, s in held.items():
            assert index.find(key, lambda _s: True) == s
        assert index.find(-12345, lambda _s: True) == -1


def test_id_index_confirms_a_hash_match_with_the_caller() -> None:
    index = IdIndex(4)
    index.insert(99, 0)
    index.insert(99, 1)  # the same hash for two keys
    assert index.find(99, lambda s: s == 1) == 1
    assert index.find(99, lambda s: False) == -1


def test_interner_gives_codes_back_when_no_row_uses_them() -> None:
    names = Interner()
    a, b = names.acquire("a"), names.acquire("b")
    assert names.acquire("a") == a and len(names) == 2
    names.release(a)
    assert names.lookup("a") == a
    names.release(a)
    assert names.lookup("a") == -1
    c = names.acquire("c")
    assert c == a and names.name(c) == "c" and names.name(b) == "b"


@pytest.mark.parametrize("capacity", [1, 5, 1000])
def test_native_trees_match_the_numpy_trees(capacity: int) -> None:
    native, reference = priority_trees(capacity), NumpyPriorityTrees(capacity)
    rng = np.random.default_rng(capacity)
    for _ in range(50):
        slots = rng.integers(0, capacity, 7)
        values = np.where(rng.random(7) < 0.3, 0.0, rng.random(7))
        native.set(slots, values)
        reference.set(slots, values)
        native.set_one(int(slots[0]), float(values[0]))
        reference.set_one(int(slots[0]), float(values[0]))
        assert native.total == pytest.approx(reference.total)
        assert native.min_positive == reference.min_positive
        if reference.total > 0:
            targets = rng.random(64) * reference.total
            got, want = np.empty(64, np.int64), np.empty(64, np.int64)
            gp, wp = np.empty(64), np.empty(64)
            native.find(targets, got, gp)
            reference.find(targets, want, wp)
            assert (got == want).all() and (gp > 0).all()
    with pytest.raises(IndexError):
        native.set_one(capacity, 1.0)
    everything = rng.random(capacity)
    native.set_all(everything)
    assert native.total == pytest.approx(everything.sum())
    out = np.empty(capacity)
    native.get(np.arange(capacity, dtype=np.int64), out)
    assert (out == everything).all()


def test_native_batch_columns_match_numpy() -> None:
    from pipeline.events.types import AttributedReward, RewardKind, Touchpoint
    from pipeline.replay import experiences
    from pipeline.replay.experiences import ExperienceTable

    table = ExperienceTable(50)
    for i in range(50):
        table.add_touchpoint(Touchpoint(f"t{i}", "e", f"u{i % 7}", "c", ("search", "email")[i % 2], 1000 * i,
                                        float(i) / 3, state=[float(i)]))
    for i in range(0, 50, 3):
        table.apply_reward(AttributedReward(RewardKind.ATTRIBUTION, f"t{i}", "e", f"u{i % 7}", "c", "search", 0,
                                            101 * i, "USD", 0.0, 0, conversion_id="c", conversion_time_ms=5000 * i))
    for i in range(0, 50, 4):
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "e", f"u{i % 7}", "c", "search", 0, 0, "USD",
                                            0.0, 0))
    slots = np.random.default_rng(0).integers(0, 50, 200)
    native, touch_n = experiences._gather_native(table.storage, slots, 0.01)
    reference, touch_r = experiences._gather_numpy(table.storage, slots, 0.01)
    assert (touch_n == touch_r).all() and native.keys() == reference.keys()
    for name, column in reference.items():
        assert column.dtype == native[name].dtype, name
        np.testing.assert_array_equal(native[name], column, err_msg=name)
    with pytest.raises(IndexError):
        experiences._gather_native(table.storage, np.array([50], dtype=np.int64), 0.01)
