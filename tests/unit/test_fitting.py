"""Learned models: journeys as the engine completes them, Markov removal effects of order 1–4 and Shapley
values on small graphs worked out by hand, order choice on held-out journeys, value weighting."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import orjson
import pytest

from pipeline.attribution.fitting import aggregate_credit, fit
from pipeline.attribution.journeys import JourneyCollector, JourneyPaths
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.markov import Chain, choose_order, removal_effects
from pipeline.attribution.shapley import shapley_values
from pipeline.backfill import run_backfill
from pipeline.backfill.journeys import journeys_of_events, journeys_of_log, paths_of_log
from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.native import available
from pipeline.synthetic import LogSpec, generate, write_engine_config
from tests.unit.helpers import conv, tp

DAY = 24


def closing(hour: float) -> list:  # enough events from an unrelated user to move a file's clock (quorum 16)
    return [tp(f"close{i}", hour, user="closing-user") for i in range(16)]


def outcome_rows(paths: JourneyPaths) -> list[tuple[str, str, int, int, int]]:
    o = paths.outcomes
    assert o is not None
    return sorted(zip([o.names[c] for c in o.channel], [o.names[c] for c in o.campaign], o.touch_ms.tolist(),
                      o.first_credit_ms.tolist(), o.total_minor.tolist(), strict=True))


def channels(journeys: list) -> list[tuple[str, ...]]:
    return [tuple(t.channel for t in j.touches) for j in journeys]


def test_markov_removal_effects_on_a_textbook_example() -> None:
    # search always leads to conversion; display alone never converts
    paths = [(("display", "search"), True), (("search",), True), (("display",), False), (("display",), False)]
    base, effects = removal_effects(paths)
    # P(conv): start→display 3/4, display→search 1/3, search→conv 1; start→search 1/4 ⇒ 3/4·1/3 + 1/4 = 1/2
    assert base == pytest.approx(0.5)
    assert effects["search"] == pytest.approx(1.0)
    assert effects["display"] == pytest.approx(0.5)  # without display only the 1/4 direct path is left


def test_a_second_order_chain_sees_what_the_first_order_one_averages_away() -> None:
    """a→b converts, c→b does not. Order 1 pools both b's (b converts half the time): a and c look alike.
    Order 2 keeps (a,b) and (c,b) apart: removing c costs nothing, removing a costs everything."""
    paths = [(("a", "b"), True), (("c", "b"), False)]
    base1, first = removal_effects(paths, order=1)
    assert base1 == pytest.approx(0.5)
    assert first == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.5})  # remove a: 1/2 · 1/2 left of 1/2
    base2, second = removal_effects(paths, order=2)
    assert base2 == pytest.approx(0.5)
    assert second == pytest.approx({"a": 1.0, "b": 1.0, "c": 0.0})


def test_orders_three_and_four_reduce_to_the_path_when_paths_are_short() -> None:
    paths = [(("a", "b", "c"), True), (("b", "a", "c"), False), (("c",), True)]
    for order in (3, 4):
        base, effects = removal_effects(paths, order=order)
        # every path is its own chain: P = 2/3; removing a kills one converter, b the same, c both
        assert base == pytest.approx(2 / 3)
        assert effects == pytest.approx({"a": 0.5, "b": 0.5, "c": 1.0})


def test_value_weighting_credits_the_channel_that_brings_the_value() -> None:
    """a's conversion is worth 100, b's 1; each channel also has one non-converting path. By conversions a and b
    are alike; by value a's removal effect is 100/101 and b's 1/101 (worked out in the weights w = v / mean)."""
    paths = [(("a",), True, 100.0), (("b",), True, 1.0), (("a",), False, 0.0), (("b",), False, 0.0)]
    from pipeline.attribution.markov import weighted

    _, by_count = Chain.fit(weighted(paths, "conversions"), 1).removal_effects()
    assert by_count == pytest.approx({"a": 0.5, "b": 0.5})
    _, by_value = Chain.fit(weighted(paths, "value"), 1).removal_effects()
    assert by_value == pytest.approx({"a": float(Fraction(100, 101)), "b": float(Fraction(1, 101))})
    assert aggregate_credit(by_value, 101.0) == pytest.approx({"a": 100.0, "b": 1.0})


def test_order_auto_finds_the_order_the_journeys_were_made_with() -> None:
    # the step after b depends on the step before it: an order-2 process
    paths = []
    for i in range(400):
        paths.append((("a", "b"), True, 1.0) if i % 2 else (("c", "b"), False, 1.0))
        paths.append((("a", "b", "d"), i % 3 != 0, 1.0))
    best, scores = choose_order(paths)
    assert best == 2, scores
    assert scores[2] > scores[1]


def test_shapley_values_sum_to_the_grand_coalition_worth() -> None:
    rates = {frozenset({"a"}): 0.1, frozenset({"b"}): 0.2, frozenset({"a", "b"}): 0.6}
    values = shapley_values(frozenset({"a", "b"}), rates)
    assert sum(values.values()) == pytest.approx(0.9)
    assert values["a"] == pytest.approx(0.1 + 0.3) and values["b"] == pytest.approx(0.2 + 0.3)


def test_shapley_of_three_channels_by_hand() -> None:
    # v(S) = Σ rates of observed subsets: v(a)=.1 v(b)=0 v(c)=.2 v(ab)=.1+.3 v(ac)=.3 v(bc)=.2 v(abc)=.6+.3+.1+.2
    rates = {frozenset("a"): 0.1, frozenset("c"): 0.2, frozenset("ab"): 0.3, frozenset("abc"): 0.6}
    values = shapley_values(frozenset("abc"), rates)
    # each observed coalition's rate is shared equally by its members (the simplified Shapley property)
    assert values == pytest.approx({"a": 0.1 + 0.15 + 0.2, "b": 0.15 + 0.2, "c": 0.2 + 0.2})
    assert sum(values.values()) == pytest.approx(1.2)


def test_journeys_are_the_engines_converted_lapsed_and_censored() -> None:
    events = [tp("a", 0, channel="display"), tp("b", 9 * DAY, channel="search"), conv("c", 9 * DAY + 1),
              tp("d", 10 * DAY, channel="email")]
    j = journeys_of_events(events, EngineConfig(), quorum=1)
    assert channels(j.converted) == [("search",)]  # a is outside c's 7-day window
    assert channels(j.lapsed) == [("display",)]  # a's window closed with nothing to credit it
    assert channels(j.censored) == [("email",)]  # d's window was still open when the log ended
    assert j.counts()["censored"] == 1


def test_duplicates_repeat_conversions_and_lapsed_sessions_as_the_engine_sees_them() -> None:
    events = [tp("s", 0, channel="search"), tp("s", 0.5, channel="search"),  # a duplicate id: ignored
              tp("d", 1, channel="display"), conv("c1", 2), conv("c1", 2.5),  # a duplicate conversion
              tp("e", 3, channel="email"), conv("c2", 4),  # the repeat converter's second journey: all three
              tp("x", 20 * DAY, user="u2", channel="video"), tp("y", 40 * DAY, user="u2", channel="social"),
              *closing(60 * DAY)]
    j = journeys_of_events(events, EngineConfig())
    assert channels(j.converted) == [("search", "display"), ("search", "display", "email")]
    # u2's touches are weeks apart: two lapsed journeys, not one
    assert sorted(channels([x for x in j.lapsed if x.user_id == "u2"])) == [("social",), ("video",)]


def test_fitted_weights_round_trip_and_drive_the_engine() -> None:
    # display alone never converts, search alone always does, display then search always does
    events = []
    for u in range(60):
        if u % 3 != 1:
            events.append(tp(f"d{u}", 0, user=f"u{u}", channel="display"))
        if u % 3 != 0:
            events.append(tp(f"s{u}", 1, user=f"u{u}", channel="search"))
            events.append(conv(f"c{u}", 2, user=f"u{u}"))
    events.sort(key=lambda e: e.timestamp_ms)
    events += closing(30 * DAY)
    journeys = journeys_of_events(events, EngineConfig())
    assert journeys.counts()["not_converted"] == 20  # the display-only users (the closing user's are censored)
    weights = fit(journeys, min_journeys=10, order="auto", weighting="value")
    assert not weights.fallback and weights.markov_order_scores
    again = LearnedWeights.from_json(json.loads(json.dumps(weights.to_json())))
    assert again.to_json() == weights.to_json()
    for model in ("data_driven", "shapley"):
        e = AttributionEngine(EngineConfig(default_model=model), again)
        e.process(tp("x", 0, channel="display"))
        e.process(tp("y", 1, channel="search"))
        out = {r.channel: r.amount_minor for r in e.process(conv("z", 2, "100"))}
        assert out["search"] > out["display"] and sum(out.values()) == 10000
        assert {r.model for r in e.process(conv("z2", 2, "1"))} == {model}


def test_version_1_weights_files_are_still_read() -> None:
    old = {"format": "rewardstream.attribution-weights", "format_version": 1, "journeys": 5,
           "converting_journeys": 2, "min_journeys": 1, "fallback": None,
           "markov": {"order": 1, "conversion_probability": 0.4, "removal_effects": {"search": 1.0}},
           "shapley": {"coalitions": [{"channels": ["search"], "journeys": 5, "conversions": 2}]}}
    w = LearnedWeights.from_json(old)
    assert w.removal_effects == {"search": 1.0} and w.markov_weighting == "conversions"
    with pytest.raises(ValueError, match="newer"):
        LearnedWeights.from_json({**old, "format_version": 99})


def test_below_the_threshold_the_learned_models_fall_back_to_linear() -> None:
    weights = fit([(("search",), True)], min_journeys=10)
    assert weights.fallback and weights.to_json()["fallback"] == "linear"


def test_fits_journeys_are_the_backfills(tmp_path: Path) -> None:
    """The journeys fit sees equal those read off `rewardstream backfill`'s output file (censored ones are
    simply not left out there: the file has no end-of-log mark), whichever engine runs."""
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(generate(LogSpec(users=600, seed=9))) + "\n")
    from pipeline.cli.common import load_engine_config

    config = load_engine_config(write_engine_config(tmp_path / "c.toml", max_future_skew_hours=24 * 60))
    run_backfill(log, tmp_path / "out.jsonl", config, progress=False, engine="python")
    collector = JourneyCollector(config.max_window_ms, config.max_journey_length)
    collector.add_all(orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines())
    from_file = collector.finish(None)
    runs = {}
    for engine in ["python", "native"] if available() else ["python"]:
        fitted = runs[engine] = journeys_of_log(log, config, engine).journeys
        assert fitted.converted == from_file.converted
        assert sorted(fitted.lapsed + fitted.censored, key=repr) == sorted(from_file.lapsed, key=repr)
        assert fitted.converted and fitted.lapsed and fitted.censored
        assert sorted(fitted.outcomes) == sorted(from_file.outcomes)
        lean, full = paths_of_log(log, config, engine)[0], fitted.as_paths()  # fit's lean form of the same
        assert (lean.converted, lean.lapsed, lean.censored, lean.end_ms) == (full.converted, full.lapsed,
                                                                             full.censored, full.end_ms)
        assert outcome_rows(lean) == outcome_rows(full) and len(outcome_rows(full)) == len(fitted.outcomes)
    if len(runs) == 2:  # the native engine folds the journeys itself: the same, in the same order
        assert runs["native"] == runs["python"]
