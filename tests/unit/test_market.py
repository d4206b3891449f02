"""The simulated market: presets, each conversion's true credit, organic conversions, harvesting, carry-over."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.events.types import Conversion, Touchpoint
from pipeline.market import CHANNELS, MARKETS, AdMarketEnv, Market, MarketSpec
from pipeline.market.exploration import exploration_log
from pipeline.units import DAY_MS, HOUR_MS

START = 1_780_272_000_000
SEARCH, DISPLAY = CHANNELS.index("search"), CHANNELS.index("display")


def _certain(spec: MarketSpec, rate: float, lift: float) -> MarketSpec:
    """Search converts with ``rate`` alone and ``rate + lift`` after display; nothing else converts."""
    conversion = np.zeros_like(spec.conversion_rate)
    conversion[:, SEARCH] = rate
    return dataclasses.replace(spec, conversion_rate=conversion, carry_lift=(lift,) * len(spec.value_mean),
                               organic_per_user_day=(0.0,) * len(spec.value_mean), harvest_share=0.0)


def test_the_one_cause_market_has_one_touch_per_conversion_and_nothing_organic() -> None:
    log = exploration_log(MARKETS["one-cause"](3), START, days=2, campaigns=2, impressions_per_hour=60)
    conversions = [e for e in log.events if isinstance(e, Conversion)]
    assert conversions and set(log.truth) == {c.conversion_id for c in conversions}
    assert all(t.organic == 0.0 and len(t.touches) == 1 and t.touches[0][1] == 1.0 for t in log.truth.values())


def test_every_conversion_owes_its_whole_value_and_a_seed_fixes_the_log() -> None:
    spec = dataclasses.replace(MARKETS["causal"](5), horizon_days=4.0)
    a = exploration_log(spec, START, days=4, campaigns=2, impressions_per_hour=60)
    b = exploration_log(spec, START, days=4, campaigns=2, impressions_per_hour=60)
    assert a.events == b.events and a.truth == b.truth
    for t in a.truth.values():
        assert t.organic + sum(s for _, s in t.touches) == pytest.approx(1.0)
    kinds = {(t.organic, len(t.touches)) for t in a.truth.values()}
    assert (1.0, 0) in kinds  # organic: no ad caused it
    assert (0.0, 2) in kinds  # carry-over: display opened, search closed
    touch_times = {(e.campaign_id, e.timestamp_ms) for e in a.events if isinstance(e, Touchpoint)}
    assert all((t.campaign, when) in touch_times for t in a.truth.values() for when, _ in t.touches)


def test_carry_over_credit_is_the_shapley_split_of_the_conversion_probability() -> None:
    spec = _certain(MARKETS["causal"](1), rate=0.5, lift=0.5)  # after display, search converts for sure
    market = Market(spec)
    assert market.impression(0, DISPLAY, user=9, now_ms=START).conversion_delay_ms is None
    closed = market.impression(0, SEARCH, user=9, now_ms=START + HOUR_MS)
    assert closed.conversion_delay_ms is not None
    assert closed.opened_by_ms == START
    assert closed.own_share == pytest.approx((0.5 + 0.25) / 1.0)  # p + l/2 of p + l; the opener gets l/2
    other_user = market.impression(0, SEARCH, user=10, now_ms=START + HOUR_MS)
    assert other_user.opened_by_ms is None
    too_late = market.impression(0, SEARCH, user=9, now_ms=START + int(spec.carry_days * DAY_MS) + HOUR_MS)
    assert too_late.opened_by_ms is None


def test_the_harvest_channel_reaches_users_about_to_convert_anyway() -> None:
    spec = dataclasses.replace(MARKETS["causal"](2), harvest_share=1.0, horizon_days=10.0)
    env = AdMarketEnv(Market(spec), "h", START, impressions_per_hour=60)
    organic = [c for c in env.due_conversions(START + 11 * DAY_MS)]
    due: dict[str, list[int]] = {}
    for c in organic:
        due.setdefault(c.user_id, []).append(c.timestamp_ms)
    env = AdMarketEnv(Market(spec), "h", START, impressions_per_hour=60)
    env.reset()
    reached = 0
    for _ in range(500):
        _obs, _r, _t, _tr, info = env.step(SEARCH)
        t = info["timestamp_ms"]
        soon = [d for d in due.get(info["user_id"], []) if t <= d <= t + spec.in_market_hours * HOUR_MS]
        reached += bool(soon)
    assert reached >= 450  # all but the moments a segment has nobody in market


def test_the_oracle_is_the_best_channel_per_segment_of_direct_incremental_value() -> None:
    spec = MARKETS["causal"](7)
    policy = spec.oracle_policy()
    for s in range(len(spec.value_mean)):
        for c in range(len(CHANNELS)):
            other = policy.copy()
            other[s] = c
            assert spec.policy_value(other) <= spec.policy_value(policy)
