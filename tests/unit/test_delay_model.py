"""The delay and value model: Kaplan–Meier with censoring by hand, the delayed-feedback probability falling with
elapsed time, shrinkage of sparse keys, recovery of a known process, and the weights-file form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.attribution.delay_model import DelayModel, fit_delay_model

H = 3_600_000


def test_kaplan_meier_with_censoring_by_hand() -> None:
    # credited after 1 h and after 3 h; still open after 2 h; closed uncredited (censored at the window)
    # observed up to 10 h: the open touch (at 8 h) for 2 h, the closed one (at −10 h) for its whole window
    model = fit_delay_model([("search",)] * 4, [0, 0, 8 * H, -10 * H], [1 * H, 3 * H, -1, -1], [500, 700, 0, 0],
                            now_ms=10 * H, window_ms=10 * H, prior=0.0)
    curve = model.curves[("search",)]
    # S: 1 → 3/4 at 1 h (4 at risk) → 3/8 at 3 h (2 at risk: the open one left at 2 h) → 3/8 at the window
    assert curve.survival[-1] == pytest.approx(3 / 8)
    assert curve.amount == pytest.approx(600.0)  # the mean credited total
    assert model.expected_minor(("search",), 0) == pytest.approx(600 * 5 / 8)
    assert model.expected_minor(("search",), 5 * H) == pytest.approx(0.0)  # no credit was ever seen after 3 h
    assert model.expected_minor(("search",), 10 * H) == 0.0  # the window has closed


def test_the_expected_reward_falls_as_time_passes_without_credit() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    delays = rng.exponential(24 * H, n)
    converts = rng.random(n) < 0.3
    window = 7 * 24 * H
    credit = np.where(converts & (delays <= window), delays, -1)
    model = fit_delay_model([("email",)] * n, np.zeros(n), credit, np.full(n, 1000), None, window)
    values = [model.expected_minor(("email",), t * H) for t in (0, 6, 24, 72, 150, 168)]
    assert all(a > b for a, b in itertools.pairwise(values[:-1])) and values[-1] == 0.0
    # the delayed-feedback form: p·S1(t) / (1 − p + p·S1(t)) with p ≈ 0.3, S1(24 h) ≈ e^-1
    p, s1 = 0.3, np.exp(-1)
    assert values[2] / 1000 == pytest.approx(p * s1 / (1 - p + p * s1), abs=0.02)


def test_a_known_process_is_recovered_from_censored_data() -> None:
    """p = 0.25, exponential delays of mean 2 days, window 7 days, each touch observed for a uniform 0–14 days:
    the fitted P(credited within the window) matches the truth although most touches are cut short."""
    rng = np.random.default_rng(11)
    n = 30000
    window = 7 * 24 * H
    touch = rng.uniform(0, 14 * 24 * H, n)
    now = 14 * 24 * H
    delay = rng.exponential(2 * 24 * H, n)
    will = (rng.random(n) < 0.25) & (delay <= window)
    seen = will & (touch + delay <= now)
    model = fit_delay_model([("video",)] * n, touch, np.where(seen, touch + delay, -1), np.full(n, 100), now, window)
    truth = 0.25 * (1 - np.exp(-7 / 2))
    assert 1 - model.curves[("video",)].survival[-1] == pytest.approx(truth, abs=0.01)
    naive = seen.mean()  # what ignoring the censoring would say
    assert naive < truth - 0.02


def test_sparse_keys_shrink_toward_their_parent() -> None:
    keys = [("search", "big")] * 2000 + [("search", "tiny")] * 3
    credit = [0] * 1000 + [-1] * 1000 + [0, 0, 0]  # big: half credited; tiny: 3 of 3
    model = fit_delay_model(keys, [0] * 2003, credit, [100] * 2003, None, 10 * H, prior=20)
    p_tiny = 1 - model.curves[("search", "tiny")].survival[-1]
    p_big = 1 - model.curves[("search", "big")].survival[-1]
    assert p_big == pytest.approx(0.5, abs=0.01)
    assert 0.5 < p_tiny < 0.65  # 3 of 3 alone would say 1.0; 20 pseudo-observations of the parent say ~0.5
    assert model.curve(("search", "unseen", "x")) is model.curves[("search",)]  # unknown keys use their parent


def test_the_model_round_trips_and_evaluates_in_bulk() -> None:
    keys = [("a",), ("b",)] * 50
    model = fit_delay_model(keys, np.zeros(100), [H if i % 3 else -1 for i in range(100)], np.full(100, 300),
                            None, 10 * H)
    again = DelayModel.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    survival, amounts = again.table([("a",), ("b",), ("c",)])
    elapsed = np.array([0.0, 0.5 * H, 2 * H, 20 * H])
    codes = np.array([0, 1, 0, 2])
    bulk = again.expected_many(survival, amounts, codes, elapsed)
    one = [again.expected_minor(k, e) for k, e in zip([("a",), ("b",), ("a",), ("c",)], elapsed, strict=True)]
    assert bulk == pytest.approx(one)
