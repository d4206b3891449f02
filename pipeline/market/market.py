"""A simulated ad market with hidden propensities (pure: numpy, no Kafka, no wall clock).

Users belong to segments; each (segment, channel) has a click rate and a conversion rate that disagree:
the channels that collect clicks are not the ones that sell. A conversion arrives hours to ~10 days after
the impression that caused it (log-normal delay), with a value that depends on the segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipeline.units import DAY_MS, HOUR_MS

CHANNELS = ("search", "display", "social", "email", "video")
SEGMENTS = ("bargain", "premium", "casual", "loyal")

FloatArray = npt.NDArray[np.float64]


def _default(rows: list[list[float]]) -> FloatArray:
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True)
class MarketSpec:
    seed: int = 7
    users_per_agent: int = 20_000
    segment_share: tuple[float, ...] = (0.30, 0.20, 0.35, 0.15)
    # rows: segments; columns: CHANNELS
    click_rate: FloatArray = field(default_factory=lambda: _default([
        [0.04, 0.09, 0.07, 0.02, 0.05],
        [0.05, 0.08, 0.06, 0.03, 0.07],
        [0.03, 0.10, 0.12, 0.01, 0.06],
        [0.06, 0.07, 0.05, 0.08, 0.04]]))
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

    def expected_value(self) -> FloatArray:
        """True conversion value per impression for each (segment, channel), late conversions included."""
        ev: FloatArray = self.conversion_rate * np.asarray(self.value_mean)[:, None]
        return ev

    def policy_value(self, policy: npt.NDArray[np.int64]) -> float:
        """Expected conversion value per 1,000 impressions of a deterministic policy (channel per segment)."""
        ev = self.expected_value()
        return 1000.0 * float(sum(share * ev[s, policy[s]] for s, share in enumerate(self.segment_share)))

    def oracle_policy(self) -> npt.NDArray[np.int64]:
        return np.asarray(np.argmax(self.expected_value(), axis=1), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Outcome:
    clicked: bool
    conversion_delay_ms: int | None  # None: this impression causes no conversion
    conversion_value: float


class Market:
    """Draws users and impression outcomes; one generator, so a seed fixes everything."""

    def __init__(self, spec: MarketSpec, stream: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, stream])
        share = np.asarray(spec.segment_share)
        self.user_segment = self.rng.choice(len(SEGMENTS), size=spec.users_per_agent, p=share / share.sum())

    def draw_user(self) -> tuple[int, int]:
        """(user index, segment) of the next user to see an ad."""
        user = int(self.rng.integers(self.spec.users_per_agent))
        return user, int(self.user_segment[user])

    def impression(self, segment: int, channel: int) -> Outcome:
        s = self.spec
        u = self.rng.random(2)
        clicked = bool(u[0] < s.click_rate[segment, channel])
        if u[1] >= s.conversion_rate[segment, channel]:
            return Outcome(clicked, None, 0.0)
        z = self.rng.standard_normal(2)
        hours = s.delay_median_hours * float(np.exp(s.delay_sigma * z[0]))
        delay = int(min(hours * HOUR_MS, s.max_delay_days * DAY_MS))
        value = s.value_mean[segment] * float(np.exp(s.value_sigma * z[1] - s.value_sigma ** 2 / 2))
        return Outcome(clicked, max(delay, 60_000), round(max(value, 0.01), 2))
