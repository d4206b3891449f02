"""The replay buffer's table, driven by the real engine's output in adversarial orders."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.events.errors import InvalidEvent
from pipeline.events.parse import parse_event
from pipeline.events.types import AttributedReward, Event, RewardKind, Touchpoint
from pipeline.replay.experiences import ExperienceTable, Priorities, fold_rewards
from pipeline.replay.store import ReplayStore
from pipeline.synthetic import LogSpec, generate
from tests.unit.helpers import conv, engine, tp


def _engine_run(users: int = 60, seed: int = 3) -> tuple[list[Touchpoint], list[AttributedReward]]:
    eng = AttributionEngine(EngineConfig())
    touches: list[Touchpoint] = []
    rewards: list[AttributedReward] = []
    for line in generate(LogSpec(users=users, seed=seed)):
        try:
            ev: Event = parse_event(orjson.loads(line))
        except InvalidEvent:
            continue
        if isinstance(ev, Touchpoint):
            touches.append(ev)
        try:
            rewards.extend(eng.process(ev))
        except InvalidEvent:
            continue
    rewards.extend(eng.flush())
    return touches, rewards


def test_any_arrival_order_gives_the_folded_totals_and_finals() -> None:
    touches, rewards = _engine_run()
    assert any(r.kind == RewardKind.CORRECTION for r in rewards) and any(r.kind == RewardKind.REFUND for r in rewards)
    expected = fold_rewards(rewards)
    finals = {r.touchpoint_id: r.amount_minor for r in rewards if r.kind == RewardKind.FINAL}
    for seed in range(3):
        rng = random.Random(seed)
        stream: list[Touchpoint | AttributedReward] = [*touches, *rewards, *rng.sample(rewards, len(rewards) // 5)]
        rng.shuffle(stream)  # rewards before their touchpoint, redeliveries, revisions out of order
        table = ExperienceTable(capacity=len(touches) * 2)
        for item in stream:
            if isinstance(item, Touchpoint):
                table.add_touchpoint(item)
            else:
                table.apply_reward(item)
        assert not table.pending
        assert table.statistics()["conversions_attributed"] == len(
            {r.conversion_id for r in rewards if r.kind == RewardKind.ATTRIBUTION})
        for t in touches:
            row = table.experience(t.touchpoint_id)
            assert row is not None
            assert row["attributed_minor"] == expected.get(t.touchpoint_id, 0)
            assert row["final"] == (t.touchpoint_id in finals)
            if row["final"]:
                assert row["final_minor"] == finals[t.touchpoint_id]


def test_a_correction_replaces_the_earlier_share_and_a_refund_subtracts() -> None:
    e = engine(default_model="linear")
    table = ExperienceTable(10)
    out: list[AttributedReward] = []
    for ev in (tp("t1", 0), tp("t2", 10), conv("c1", 20, "90"), tp("t3", 19.5), conv("r1", 20.5, "30", refund_of="c1")):
        if isinstance(ev, Touchpoint):
            table.add_touchpoint(ev)
        out += e.process(ev)
    for r in out:
        table.apply_reward(r)
    # 90 over three touches after the late t3, minus a third of the 30 refund each.
    assert [table.experience(t)["attributed_minor"] for t in ("t1", "t2", "t3")] == [2000, 2000, 2000]  # type: ignore[index]
    assert table.statistics()["conversions_attributed"] == 1


def test_eviction_is_oldest_first_and_keeps_the_final_index_consistent() -> None:
    table = ExperienceTable(3)
    for i in range(5):
        table.add_touchpoint(tp(f"t{i}", i))
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "e", "u1", "c", "search", 0, 0, "USD", 0.0,
                                            0))
    assert len(table) == 3 and table.n_final == 3 and table.evicted == 2
    assert table.experience("t0") is None and table.experience("t1") is None
    held = set(table.ids[table.final_slots[: table.n_final]])
    assert held == {"t2", "t3", "t4"}
    assert table.add_touchpoint(tp("t4", 9)) is None  # a repeated touchpoint changes nothing


def test_states_stack_into_a_matrix_until_one_is_not_a_vector() -> None:
    table = ExperienceTable(8)
    for i in range(3):
        table.add_touchpoint(Touchpoint(f"t{i}", "e", "u", "c", "search", 0, 0.0, state=[i, 1.5], action=[i]))
    table.add_touchpoint(Touchpoint("none", "e", "u", "c", "search", 0, 0.0, state=None))
    batch = table.take(np.arange(4))
    assert batch["states"].dtype == np.float32 and batch["states"].shape == (4, 2)
    assert np.isnan(batch["states"][3]).all() and table.experience("none")["state"] is None  # type: ignore[index]
    table.add_touchpoint(Touchpoint("t9", "e", "u", "c", "search", 0, 0.0, state={"stage": "awareness"}))
    batch = table.take(np.arange(5), with_ids=True)
    assert batch["states"].dtype == object and list(batch["touchpoint_ids"]) == ["t0", "t1", "t2", "none", "t9"]
    assert batch["states"][0] == [0.0, 1.5] and batch["states"][3] is None
    assert batch["states"][4] == {"stage": "awareness"}


def test_uniform_final_only_draws_only_final_experiences() -> None:
    table = ExperienceTable(100)
    for i in range(100):
        table.add_touchpoint(tp(f"t{i}", i))
    with pytest.raises(LookupError):
        table.draw_uniform(np.random.default_rng(0), 8, final_only=True)
    for i in range(0, 100, 10):
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "e", "u1", "c", "search", 0, 0, "USD", 0.0, 0))
    slots = table.draw_uniform(np.random.default_rng(0), 1000, final_only=True)
    assert table.final[slots].all() and len(set(slots.tolist())) == 10


def test_prioritized_draws_follow_the_reward_correction_and_trainer_priorities() -> None:
    table = ExperienceTable(4, Priorities(alpha=1.0, beta=1.0, eps=0.0))
    for i, original in enumerate((0.0, 0.0, 0.0, 0.0)):
        table.add_touchpoint(tp(f"t{i}", i, reward=original))
    for i, amount in enumerate((100, 300, 0, 0)):  # corrections of 1 and 3 currency units
        table.apply_reward(AttributedReward(RewardKind.ATTRIBUTION, f"t{i}", "e", "u1", "c", "search", 0, amount,
                                            "USD", 0.0, 0, conversion_id="c1"))
    rng = np.random.default_rng(1)
    slots, weights = table.draw_prioritized(rng, 40_000)
    share = np.bincount(slots, minlength=4) / len(slots)
    assert share[0] == pytest.approx(0.25, abs=0.01) and share[1] == pytest.approx(0.75, abs=0.01)
    assert share[2] == 0 and share[3] == 0
    assert weights.max() == 1.0 and weights[slots == 1].max() == pytest.approx(1 / 3)
    assert table.set_priorities(table.seq[[3]], [6.0]) == 1
    slots, _ = table.draw_prioritized(rng, 40_000)
    assert np.bincount(slots, minlength=4)[3] / len(slots) == pytest.approx(0.6, abs=0.01)


def test_store_round_trip_restores_rows_pending_rewards_and_offsets(tmp_path: Path) -> None:
    touches, rewards = _engine_run(users=20)
    table = ExperienceTable(len(touches))
    store = ReplayStore(tmp_path / "db")
    early = [r for r in rewards if r.touchpoint_id == touches[-1].touchpoint_id]
    for r in early:  # waits for a touchpoint that has not arrived
        table.apply_reward(r)
    for t in touches[:-1]:
        table.add_touchpoint(t)
    for r in rewards:
        if r not in early:
            table.apply_reward(r)
    store.write(*table.take_changes(), offsets={("rewards", 0): 42})
    store.close()

    restored = ExperienceTable(len(touches))
    store = ReplayStore(tmp_path / "db")
    rows, pending, offsets, _ = store.load()
    for row in rows:
        restored.restore_row(row)
    restored.pending.update(pending)
    assert offsets == {("rewards", 0): 42}
    restored.add_touchpoint(touches[-1])  # the waiting rewards apply now
    table.add_touchpoint(touches[-1])
    for t in touches:
        assert restored.experience(t.touchpoint_id) == table.experience(t.touchpoint_id)
    store.close()


def test_a_buffer_reopened_with_a_smaller_capacity_keeps_the_newest(tmp_path: Path) -> None:
    from pipeline.replay import ReplayBuffer
    from pipeline.settings import Settings

    table = ExperienceTable(10)
    for i in range(10):
        table.add_touchpoint(tp(f"t{i}", i))
    store = ReplayStore(tmp_path / "db")
    store.write(*table.take_changes(), offsets={("touchpoints", 0): 10})
    store.close()
    buffer = ReplayBuffer(Settings(), path=tmp_path / "db", capacity=4)  # not started: no Kafka needed
    assert len(buffer) == 4 and [r["touchpoint_id"] for r in buffer.journey("u1")] == ["t6", "t7", "t8", "t9"]
    buffer.stop()
    rows, _pending, offsets, _meta = ReplayStore(tmp_path / "db").load()
    assert [r["touchpoint_id"] for r in rows] == ["t6", "t7", "t8", "t9"] and offsets == {("touchpoints", 0): 10}
