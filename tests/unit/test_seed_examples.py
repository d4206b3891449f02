"""The design document's worked examples: 3 touchpoints and a $120 conversion."""

from __future__ import annotations

import math

import pytest

from tests.unit.helpers import amounts, conv, engine, tp


def _split(model: str) -> dict[str, int]:
    e = engine(default_model=model)
    for tid, hour in (("t1", 0), ("t2", 24), ("t3", 36)):
        e.process(tp(tid, hour))
    return amounts(e.process(conv("c1", 48)))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("linear", {"t1": 4000, "t2": 4000, "t3": 4000}),
        ("last_click", {"t1": 0, "t2": 0, "t3": 12000}),
        ("first_click", {"t1": 12000, "t2": 0, "t3": 0}),
        ("position_based", {"t1": 4800, "t2": 2400, "t3": 4800}),
    ],
)
def test_rule_based_models_give_the_documents_numbers(model: str, expected: dict[str, int]) -> None:
    assert _split(model) == expected


def test_time_decay_splits_by_half_life_weights() -> None:
    # touches 48 h, 24 h and 12 h before the conversion, half-life 24 h → weights 1/4, 1/2, 1/√2
    got = _split("time_decay")
    weights = [0.25, 0.5, 1 / math.sqrt(2)]
    exact = [12000 * w / sum(weights) for w in weights]
    assert sum(got.values()) == 12000
    for (_, cents), ideal in zip(sorted(got.items()), exact, strict=True):
        assert abs(cents - ideal) < 1
    assert list(got.values()) == [2059, 4118, 5823]


def test_learned_models_without_weights_fall_back_to_linear_and_say_so() -> None:
    e = engine(default_model="data_driven")
    for tid, hour in (("t1", 0), ("t2", 24), ("t3", 36)):
        e.process(tp(tid, hour))
    out = e.process(conv("c1", 48))
    assert [r.amount_minor for r in out] == [4000, 4000, 4000]
    assert {r.model for r in out} == {"linear"}
