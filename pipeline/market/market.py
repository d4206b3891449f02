"""A simulated ad market with hidden propensities (pure: numpy, no Kafka, no wall clock).

Users belong to segments; each (segment, channel) has a click rate and a conversion rate that disagree:
the channels that collect clicks are not the ones that sell. A conversion arrives hours to ~10 days after
the impression that caused it (log-normal delay), with a value that depends on the segment.

Two presets (``MARKETS``). **one-cause**: each conversion is caused by exactly one impression, nothing else
happens. **causal**: three things attribution has to untangle, all from one causal model:

- *organic conversions*: every user converts now and then with no ad at all (a Poisson process per segment);
  an ad shown before one gets the credit from any rule that splits a conversion among its touchpoints;
- *harvesting*: a share of the harvest channel's impressions (branded search) reach users who are about to
  convert organically anyway (the people searching for the brand), so the channel sits in front of
  conversions it did not cause;
- *carry-over*: an impression on ``carry_from`` (display) raises the conversion odds of a later impression on
  ``carry_to`` (search) for the same user within ``carry_days`` by ``carry_lift`` (display opens, search
  closes).

The truth each conversion records is what its probability owes to each touch, by Shapley value on the
conversion probability: an impression-caused conversion with probability p of its own, plus the lift l from
the user's last carry-over impression, owes (p + l/2) / (p + l) to the closing touch and (l/2) / (p + l) to
the opening one; an organic conversion owes everything to no ad (organic share 1), whatever ads preceded it.

The oracle is over the agents' policy class, a channel per segment: such a policy never shows one user two
channels, so carry-over never fires under it and its value is the direct incremental value alone. Organic and
harvested conversions are worth nothing to any policy: they happen anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipeline.units import DAY_MS, HOUR_MS

CHANNELS = ("search", "display", "social", "email", "video")
SEGMENTS = ("bargain", "premium", "casual", "loyal")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _default(rows: list[list[float]]) -> FloatArray:
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True)
class MarketSpec:
    seed: int = 7
    name: str = "one-cause"
    users_per_agent: int = 20_000
    segment_share: tuple[float, ...] = (0.30, 0.20, 0.35, 0.15)
    # rows: segments; columns: CHANNELS
    click_rate: FloatArray = field(default_factory=lambda: _default([
        [0.04, 0.09, 0.07, 0.02, 0.05],
        [0.05, 0.08, 0.06, 0.03, 0.07],
        [0.03, 0.10, 0.12, 0.01, 0.06],
        [0.06, 0.07, 0.05, 0.08, 0.04]]))
    # the probability that an impression causes a conversion (its incremental effect)
    conversion_rate: FloatArray = field(default_factory=lambda: _default([
        [0.030, 0.006, 0.010, 0.012, 0.008],
        [0.015, 0.004, 0.006, 0.010, 0.028],
        [0.008, 0.003, 0.004, 0.020, 0.006],
        [0.020, 0.004, 0.005, 0.040, 0.006]]))
    value_mean: tuple[float, ...] = (40.0, 180.0, 60.0, 90.0)  # per segment, in USD
    value_sigma: float = 0.4  # log-normal spread of a conversion's value around its segment's mean
    delay_median_hours: float = 36.0
    delay_sigma: float = 1.0
    max_delay_days: float = 10.0
    cpm: float = 5.0  # spend per 1,000 impressions, the same on every channel
    # causal structure (all off in the one-cause preset)
    organic_per_user_day: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # per segment
    harvest_channel: str = "search"
    harvest_share: float = 0.0  # share of its impressions that reach a user about to convert organically
    in_market_hours: float = 72.0  # "about to convert": the next organic conversion is at most this far ahead
    carry_from: str = "display"
    carry_to: str = "search"
    carry_lift: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # per segment, added to carry_to's conversion rate
    carry_days: float = 7.0
    horizon_days: float = 60.0  # organic conversions are drawn this far ahead of the start

    def expected_value(self) -> FloatArray:
        """True incremental conversion value per impression for each (segment, channel), late conversions
        included (carry-over left out: a policy of a channel per segment never triggers it)."""
        ev: FloatArray = self.conversion_rate * np.asarray(self.value_mean)[:, None]
        return ev

    def policy_value(self, policy: npt.NDArray[np.int64]) -> float:
        """Expected incremental conversion value per 1,000 impressions of a deterministic policy (channel per
        segment)."""
        ev = self.expected_value()
        return 1000.0 * float(sum(share * ev[s, policy[s]] for s, share in enumerate(self.segment_share)))

    def oracle_policy(self) -> npt.NDArray[np.int64]:
        return np.asarray(np.argmax(self.expected_value(), axis=1), dtype=np.int64)

    @property
    def causal(self) -> bool:
        return bool(any(self.organic_per_user_day) or self.harvest_share or any(self.carry_lift))


def one_cause(seed: int = 7) -> MarketSpec:
    """Each conversion caused by exactly one impression; no organic conversions, no interplay."""
    return MarketSpec(seed=seed)


def causal(seed: int = 7) -> MarketSpec:
    """Organic conversions, branded search harvesting them, display → search carry-over. Fewer users than the
    one-cause market, so a user sees several ads within a window (multi-touch journeys); search's own effect
    is small and most of what it appears to sell is harvested or opened by display."""
    return MarketSpec(
        seed=seed, name="causal", users_per_agent=4_000,
        conversion_rate=_default([
            [0.008, 0.008, 0.010, 0.012, 0.008],
            [0.006, 0.006, 0.006, 0.010, 0.028],
            [0.004, 0.005, 0.004, 0.020, 0.006],
            [0.008, 0.005, 0.005, 0.040, 0.006]]),
        organic_per_user_day=(0.0015, 0.001, 0.001, 0.002),
        harvest_share=0.006,
        carry_lift=(0.015, 0.035, 0.010, 0.015))


MARKETS: dict[str, Callable[[int], MarketSpec]] = {"causal": causal, "one-cause": one_cause}
DEFAULT_MARKET = "causal"


@dataclass(frozen=True, slots=True)
class Outcome:
    clicked: bool
    conversion_delay_ms: int | None  # None: this impression causes no conversion
    conversion_value: float
    user: int = -1  # who saw it (the harvest channel may reach another user of the segment than the one drawn)
    own_share: float = 1.0  # of the conversion's value, what this touch caused
    opened_by_ms: int | None = None  # the carry-over touch (its time) owed the rest, if any


@dataclass(frozen=True, slots=True)
class Organic:
    due_ms: int
    user: int
    value: float


class Market:
    """Draws users and impression outcomes; one generator, so a seed fixes everything."""

    def __init__(self, spec: MarketSpec, stream: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, stream])
        share = np.asarray(spec.segment_share)
        self.user_segment = self.rng.choice(len(SEGMENTS), size=spec.users_per_agent, p=share / share.sum())
        self._harvest = CHANNELS.index(spec.harvest_channel)
        self._carry = (CHANNELS.index(spec.carry_from), CHANNELS.index(spec.carry_to))
        self._opened_ms = np.full(spec.users_per_agent, -1, dtype=np.int64)  # last carry_from impression
        # per segment: organic conversion times (sorted) and their users, for the harvest channel's reach
        self._organic_by_segment: list[tuple[IntArray, IntArray]] = []

    def draw_user(self) -> tuple[int, int]:
        """(user index, segment) of the next user to see an ad."""
        user = int(self.rng.integers(self.spec.users_per_agent))
        return user, int(self.user_segment[user])

    def _value(self, segment: int, z: float) -> float:
        s = self.spec
        return round(max(s.value_mean[segment] * float(np.exp(s.value_sigma * z - s.value_sigma ** 2 / 2)), 0.01), 2)

    def organic(self, start_ms: int) -> list[Organic]:
        """Every user's organic conversions from ``start_ms`` over the horizon, oldest first (none in the
        one-cause market). Call once, before the first impression."""
        s = self.spec
        rate = np.asarray(s.organic_per_user_day)[self.user_segment] * s.horizon_days
        if not rate.any():
            return []
        counts = self.rng.poisson(rate)
        users = np.repeat(np.arange(s.users_per_agent), counts)
        due = start_ms + (self.rng.random(len(users)) * s.horizon_days * DAY_MS).astype(np.int64)
        z = self.rng.standard_normal(len(users))
        order = np.argsort(due, kind="stable")
        users, due, z = users[order], due[order], z[order]
        segments = self.user_segment[users]
        self._organic_by_segment = [(due[segments == g], users[segments == g]) for g in range(len(SEGMENTS))]
        return [Organic(int(t), int(u), self._value(int(g), float(v)))
                for t, u, g, v in zip(due, users, segments, z, strict=True)]

    def reach(self, user: int, segment: int, channel: int, now_ms: int) -> int:
        """Who the impression reaches: the drawn user, except for the harvest channel's share that goes to a
        user of the segment whose next organic conversion is due within ``in_market_hours``."""
        s = self.spec
        if channel != self._harvest or not s.harvest_share or not self._organic_by_segment:
            return user
        if self.rng.random() >= s.harvest_share:
            return user
        due, users = self._organic_by_segment[segment]
        lo, hi = np.searchsorted(due, [now_ms, now_ms + int(s.in_market_hours * HOUR_MS)])
        return int(users[self.rng.integers(lo, hi)]) if hi > lo else user

    def impression(self, segment: int, channel: int, user: int = -1, now_ms: int = 0) -> Outcome:
        s = self.spec
        u = self.rng.random(2)
        clicked = bool(u[0] < s.click_rate[segment, channel])
        rate = float(s.conversion_rate[segment, channel])
        lift, opened = 0.0, None
        if user >= 0 and s.carry_lift[segment]:
            if channel == self._carry[0]:
                self._opened_ms[user] = now_ms
            elif channel == self._carry[1] and self._opened_ms[user] >= 0 and \
                    now_ms - self._opened_ms[user] <= s.carry_days * DAY_MS:
                lift, opened = float(s.carry_lift[segment]), int(self._opened_ms[user])
        if u[1] >= rate + lift:
            return Outcome(clicked, None, 0.0, user)
        z = self.rng.standard_normal(2)
        hours = s.delay_median_hours * float(np.exp(s.delay_sigma * z[0]))
        delay = int(min(hours * HOUR_MS, s.max_delay_days * DAY_MS))
        own = (rate + lift / 2) / (rate + lift)
        return Outcome(clicked, max(delay, 60_000), self._value(segment, float(z[1])), user, own,
                       opened if lift else None)
