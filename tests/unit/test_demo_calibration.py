"""The demo's calibration check: provisional rewards when fresh against realized finals, per channel, from day 4
on, with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.demo.ad_market import CALIBRATION_FROM_DAY, DayRecord, _calibration


def _day(day: int, predictions: list[tuple[str, str, float]]) -> DayRecord:
    return DayRecord(day, {}, {}, 0.0, 0.0, 0, None, {}, predictions)


def test_calibration_is_judged_from_day_four_to_the_last_day_whose_finals_are_in() -> None:
    rng = np.random.default_rng(0)
    days, ids, finals = [], [], []
    for d in range(1, 21):
        preds = []
        for i in range(300):
            tid = f"d{d}-{i}"
            ids.append(tid)
            finals.append(int(rng.random() < 0.1) * 500)  # 10 % pay 5.00 USD: a mean of 0.50
            preds.append((tid, "display", 0.60 if d < CALIBRATION_FROM_DAY else 0.55))
        days.append(_day(d, preds))
    cols = {"touchpoint_ids": np.asarray(ids), "final": np.ones(len(ids), dtype=bool),
            "final_minor": np.asarray(finals)}
    calibration, span = _calibration(days, cols, window_days=7, seed=1)
    assert span == (CALIBRATION_FROM_DAY, 20 - 7 - 1)
    c = calibration["display"]
    assert c.n == 300 * (span[1] - span[0] + 1)
    assert c.expected == pytest.approx(0.55)  # days 1-3 (0.60) left out
    assert c.error == pytest.approx(0.55 / c.realized - 1)
    assert c.low < c.error < c.high
    assert c.high - c.low == pytest.approx(2 * 1.96 * c.se / c.realized * (1 + c.error), rel=0.25)


def test_a_channel_that_never_paid_has_an_unbounded_error() -> None:
    days = [_day(d, [(f"t{d}", "social", 0.1)]) for d in range(1, 15)]
    cols = {"touchpoint_ids": np.asarray([f"t{d}" for d in range(1, 15)]), "final": np.ones(14, dtype=bool),
            "final_minor": np.zeros(14, dtype=np.int64)}
    calibration, _ = _calibration(days, cols, window_days=7, seed=1)
    assert calibration["social"].realized == 0.0 and calibration["social"].error == float("inf")
