"""The replay buffer's table, driven by the real engine's output in adversarial orders."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.errors import InvalidEvent
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
    assert len(table) == 3 and table.n_final == 3 and table.join.evicted == 2
    assert table.experience("t0") is None and table.experience("t1") is None
    held = {table.storage.touchpoint_id(int(s)) for s in table.finals.slots[: table.n_final]}
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
    assert table.take(slots)["final"].all() and len(set(slots.tolist())) == 10


def test_prioritized_new_and_re_rewarded_experiences_get_the_largest_priority() -> None:
    """Schaul et al.: a new experience is drawn at the largest priority so far until the trainer sets its TD
    error; a reward that changes an experience makes it new information again."""
    table = ExperienceTable(4, Priorities(alpha=1.0, beta=1.0, eps=0.0, normalize="batch"))
    for i in range(4):
        table.add_touchpoint(tp(f"t{i}", i))
    rng = np.random.default_rng(1)
    slots, weights = table.draw_prioritized(rng, 40_000)
    assert np.bincount(slots, minlength=4) / len(slots) == pytest.approx([0.25] * 4, abs=0.01)
    assert (weights == 1.0).all()
    index = table.take(np.arange(4))["index"]
    assert table.set_priorities(index, [3.0, 1.0, 0.0, 0.0]) == 4  # max priority is now 3
    slots, weights = table.draw_prioritized(rng, 40_000)
    share = np.bincount(slots, minlength=4) / len(slots)
    assert share == pytest.approx([0.75, 0.25, 0, 0], abs=0.01)
    assert weights[slots == 0].max() == pytest.approx(1 / 3) and weights.max() == 1.0
    table.add_touchpoint(tp("t4", 9))  # evicts t0; the newcomer gets the max priority 3
    table.apply_reward(AttributedReward(RewardKind.ATTRIBUTION, "t2", "e", "u1", "c", "search", 0, 100, "USD", 0.0,
                                        0, conversion_id="c1"))  # t2 re-rewarded: 3 as well
    slots, _ = table.draw_prioritized(rng, 70_000)
    share = np.bincount(slots, minlength=4) / len(slots)
    assert share == pytest.approx([3 / 7, 1 / 7, 3 / 7, 0], abs=0.01)  # slot 0 now holds t4


def test_importance_weights_are_normalized_by_the_buffer_and_beta_anneals() -> None:
    table = ExperienceTable(3, Priorities(alpha=1.0, beta=0.5, beta_end=1.0, beta_anneal_draws=2, eps=0.0))
    for i in range(3):
        table.add_touchpoint(tp(f"t{i}", i))
    table.set_priorities(table.take(np.arange(3))["index"], [4.0, 1.0, 2.0])
    assert table.sampler is not None and table.sampler.beta == 0.5
    slots, weights = table.draw_prioritized(np.random.default_rng(0), 2000)
    prios = np.array([4.0, 1.0, 2.0])[slots]
    assert weights == pytest.approx((prios / 1.0) ** -0.5)  # the buffer's min priority has weight 1
    assert table.sampler.beta == 0.75
    table.draw_prioritized(np.random.default_rng(0), 8)
    table.draw_prioritized(np.random.default_rng(0), 8)
    assert table.sampler.beta == 1.0  # stays at beta_end


def test_final_only_priorities_draw_only_finals() -> None:
    table = ExperienceTable(10, Priorities(), final_only_priorities=True)
    for i in range(10):
        table.add_touchpoint(tp(f"t{i}", i))
    with pytest.raises(LookupError):
        table.draw_prioritized(np.random.default_rng(0), 4)
    for i in (3, 7):
        table.apply_reward(AttributedReward(RewardKind.FINAL, f"t{i}", "e", "u1", "c", "search", 0, 0, "USD", 0.0, 0))
    assert table.set_priorities(table.take(np.arange(10))["index"], [1.0] * 10) == 2  # finals only
    slots, _ = table.draw_prioritized(np.random.default_rng(0), 1000)
    assert set(slots.tolist()) == {3, 7}


def test_ids_are_scoped_by_user() -> None:
    table = ExperienceTable(8)
    table.add_touchpoint(tp("same", 0, user="a"))
    table.add_touchpoint(tp("same", 1, user="b"))
    assert len(table) == 2
    table.apply_reward(AttributedReward(RewardKind.ATTRIBUTION, "same", "e", "b", "c", "search", 0, 700, "USD", 0.0,
                                        0, conversion_id="c1"))
    assert table.experience("same", "a")["attributed_minor"] == 0  # type: ignore[index]
    assert table.experience("same", "b")["attributed_minor"] == 700  # type: ignore[index]
    assert table.experience("same", "z") is None


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
    assert restored.restore(rows, pending, {}) == []
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


def test_provisional_rewards_fall_with_event_time_then_give_way_to_attributed_and_final() -> None:
    """A row's reward is the delay model's estimate while nothing has credited it, the attributed amount once
    something has, the final amount when final; the estimate falls as the buffer's event time passes the touch,
    and attributed money is never mixed with it."""
    from pipeline.attribution.delay_model import fit_delay_model
    from pipeline.replay import RewardSource

    hour = 3_600_000
    # history: search touches in segment "1" are credited 10.00 half the time, after 1-4 hours
    keys = [("search", "camp", "1")] * 200
    credit = [i % 4 * hour + hour if i % 2 else -1 for i in range(200)]
    model = fit_delay_model(keys, [0] * 200, credit, [1000] * 200, None, 24 * hour, base_currency="USD")
    table = ExperienceTable(10)
    table.set_delay_model(model, feature=lambda state: str(int(np.argmax(state))))
    e = engine(default_model="linear")
    a = tp("a", 0)
    table.add_touchpoint(dataclasses.replace(a, campaign_id="camp", state=[0.0, 1.0]))
    batch = table.take(np.array([0]))
    assert batch["reward_source"][0] == RewardSource.PROVISIONAL
    fresh = batch["expected_reward"][0]
    assert fresh == pytest.approx(5.0, abs=0.3) and batch["reward"][0] == fresh  # p = 1/2 of 10.00
    assert batch["attributed_reward"][0] == 0.0
    table.add_touchpoint(dataclasses.replace(tp("b", 2.5, user="u2"), campaign_id="camp", state=[0.0, 1.0]))
    later = table.take(np.array([0]))["expected_reward"][0]  # event time is now 2.5 h past a's touch
    assert 0 < later < fresh
    e.process(a)
    for r in e.process(conv("c1", 3, "8.00")):
        table.apply_reward(r)
    batch = table.take(np.array([0]))
    assert batch["reward_source"][0] == RewardSource.ATTRIBUTED and batch["reward"][0] == 8.0
    for r in e.flush():
        table.apply_reward(r)
    batch = table.take(np.array([0]))
    assert batch["reward_source"][0] == RewardSource.FINAL and batch["reward"][0] == 8.0


def test_batches_as_torch_tensors_share_the_numeric_columns() -> None:
    torch = pytest.importorskip("torch")
    from pipeline.replay.tensors import to_tensors

    table = ExperienceTable(8)
    for i in range(4):
        table.add_touchpoint(Touchpoint(f"t{i}", "e", "u", "c", "search", 0, float(i), state=[i, 1.0], action=[i]))
    batch = table.take(np.arange(4), with_ids=True)
    tensors = to_tensors(batch)
    assert tensors["states"].dtype == torch.float32 and tuple(tensors["states"].shape) == (4, 2)
    assert tensors["original_reward"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert tensors["final"].dtype == torch.bool
    assert list(tensors["touchpoint_ids"]) == ["t0", "t1", "t2", "t3"]  # strings stay numpy
    batch["states"][0, 0] = 42.0  # zero-copy on the CPU
    assert float(tensors["states"][0, 0]) == 42.0
