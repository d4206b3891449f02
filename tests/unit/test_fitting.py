"""Learned models: Markov removal effects and Shapley values on journeys with known answers."""

from __future__ import annotations

import json

import pytest

from pipeline.attribution.fitting import completed_journeys, fit
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.markov import removal_effects
from pipeline.attribution.shapley import shapley_values
from pipeline.engine import DAY_MS, AttributionEngine, EngineConfig
from tests.unit.helpers import conv, tp


def test_markov_removal_effects_on_a_textbook_example() -> None:
    # search always leads to conversion; display alone never converts
    paths = [(("display", "search"), True), (("search",), True), (("display",), False), (("display",), False)]
    base, effects = removal_effects(paths)
    # P(conv): start→display 3/4, display→search 1/3, search→conv 1; start→search 1/4 ⇒ 3/4·1/3 + 1/4 = 1/2
    assert base == pytest.approx(0.5)
    assert effects["search"] == pytest.approx(1.0)
    assert effects["display"] == pytest.approx(0.5)  # without display only the 1/4 direct path is left


def test_shapley_values_sum_to_the_grand_coalition_worth() -> None:
    rates = {frozenset({"a"}): 0.1, frozenset({"b"}): 0.2, frozenset({"a", "b"}): 0.6}
    values = shapley_values(frozenset({"a", "b"}), rates)
    assert sum(values.values()) == pytest.approx(0.9)
    assert values["a"] == pytest.approx(0.1 + 0.3) and values["b"] == pytest.approx(0.2 + 0.3)


def test_journeys_split_into_converting_and_expired() -> None:
    events = [tp("a", 0, channel="display"), tp("b", 24 * 9, channel="search"), conv("c", 24 * 9 + 1),
              tp("d", 24 * 10, channel="email")]
    journeys = completed_journeys(events, lambda _: 7 * DAY_MS)
    assert journeys == [(("display",), False), (("search",), True), (("email",), False)]


def test_fitted_weights_round_trip_and_drive_the_engine() -> None:
    # display alone never converts, search alone always does, display then search always does
    events = []
    for u in range(60):
        if u % 3 != 1:
            events.append(tp(f"d{u}", 0, user=f"u{u}", channel="display"))
        if u % 3 != 0:
            events.append(tp(f"s{u}", 1, user=f"u{u}", channel="search"))
            events.append(conv(f"c{u}", 2, user=f"u{u}"))
    weights = fit(completed_journeys(events, lambda _: 7 * DAY_MS), min_journeys=10)
    assert not weights.fallback
    again = LearnedWeights.from_json(json.loads(json.dumps(weights.to_json())))
    assert again.to_json() == weights.to_json()
    for model in ("data_driven", "shapley"):
        e = AttributionEngine(EngineConfig(default_model=model), again)
        e.process(tp("x", 0, channel="display"))
        e.process(tp("y", 1, channel="search"))
        out = {r.channel: r.amount_minor for r in e.process(conv("z", 2, "100"))}
        assert out["search"] > out["display"] and sum(out.values()) == 10000
        assert {r.model for r in e.process(conv("z2", 2, "1"))} == {model}


def test_below_the_threshold_the_learned_models_fall_back_to_linear() -> None:
    weights = fit([(("search",), True)], min_journeys=10)
    assert weights.fallback and weights.to_json()["fallback"] == "linear"
