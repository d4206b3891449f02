"""Attribution models: given a conversion's eligible touchpoints, return integer weights.

Weights are non-negative integers so that :func:`pipeline.money.exact.split_exact` can split
money exactly. Rule-based models use exact rational weights; models with real-valued weights (time decay,
the learned ones) are scaled to 52-bit integers, which keeps their order and ratios to ~1e-15.
Touchpoints arrive sorted by (time, touchpoint_id), so "first" and "last" are well defined.
A model returns ``None`` when it cannot judge a journey (a learned model that has not seen its channels);
the caller then attributes linearly and says so in the reward's ``model`` field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import lcm
from typing import Protocol

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.shapley import coalition_rates, shapley_values
from pipeline.events.types import MODEL_NAMES, AttributionModel

_SCALE = float(1 << 52)


class Model(Protocol):
    @property
    def name(self) -> str: ...

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int] | None: ...


def _scaled(values: Sequence[float]) -> list[int] | None:
    top = max(values)
    if top <= 0:
        return None
    return [int(v / top * _SCALE) for v in values]


class LastClick:
    name = AttributionModel.LAST_CLICK.value

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int]:
        w = [0] * len(times)
        w[-1] = 1
        return w


class FirstClick:
    name = AttributionModel.FIRST_CLICK.value

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int]:
        w = [0] * len(times)
        w[0] = 1
        return w


class Linear:
    name = AttributionModel.LINEAR.value

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int]:
        return [1] * len(times)


@dataclass(frozen=True)
class TimeDecay:
    """weight = 2^(−Δt / half_life), Δt = conversion time − touch time (computed relative to the newest
    touch so that long gaps never underflow every weight to zero)."""

    half_life_ms: float
    name: str = AttributionModel.TIME_DECAY.value

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int]:
        newest = max(times)
        hl = self.half_life_ms
        return [int(2.0 ** (-(newest - t) / hl) * _SCALE) for t in times]


@dataclass(frozen=True)
class PositionBased:
    """``first`` and ``last`` shares to the ends, the rest evenly over the middle; one touch takes all,
    two take half each."""

    first: Fraction = Fraction(2, 5)
    last: Fraction = Fraction(2, 5)
    name: str = AttributionModel.POSITION_BASED.value

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < 0 or self.first + self.last > 1:
            raise ValueError(f"position shares must be ≥ 0 and sum to ≤ 1, got {self.first} + {self.last}")

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int]:
        n = len(times)
        if n <= 2:
            return [1] * n
        middle = (1 - self.first - self.last) / (n - 2)
        shares = [self.first, middle, self.last]
        denom = lcm(*(s.denominator for s in shares))
        f, m, last = (int(s * denom) for s in shares)
        return [f] + [m] * (n - 2) + [last]


@dataclass(frozen=True)
class DataDriven:
    """Markov removal effects: each channel's credit ∝ its removal effect, split evenly over that
    channel's touches in the journey."""

    learned: LearnedWeights
    name: str = AttributionModel.DATA_DRIVEN.value

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int] | None:
        if self.learned.fallback:
            return None
        effects = self.learned.removal_effects
        counts = Counter(channels)
        return _scaled([effects.get(c, 0.0) / counts[c] for c in channels])


class Shapley:
    """Shapley value of each channel in the journey's coalition, split evenly over its touches."""

    name = AttributionModel.SHAPLEY.value

    def __init__(self, learned: LearnedWeights, max_channels: int = 16) -> None:
        self.learned = learned
        self.max_channels = max_channels
        self._rates = coalition_rates(learned.coalitions)
        self._values = lru_cache(maxsize=4096)(self._values_uncached)

    def _values_uncached(self, coalition: frozenset[str]) -> dict[str, float]:
        return shapley_values(coalition, self._rates)

    def weights(self, times: Sequence[int], channels: Sequence[str], conversion_ms: int) -> list[int] | None:
        if self.learned.fallback:
            return None
        coalition = frozenset(channels)
        if len(coalition) > self.max_channels:
            return None
        values = self._values(coalition)
        counts = Counter(channels)
        return _scaled([values.get(c, 0.0) / counts[c] for c in channels])



@dataclass(frozen=True)
class ModelSettings:
    """What a model may be built from: the engine's settings and the fitted weights."""

    half_life_ms: float
    position_first: Fraction
    position_last: Fraction
    learned: LearnedWeights


# The registry: every model by the name a conversion's ``model`` field uses. Adding a model is a class above
# and a line here (its name also goes into the wire format's AttributionModel, which this checks at import).
REGISTRY: dict[str, Callable[[ModelSettings], Model]] = {
    LastClick.name: lambda s: LastClick(),
    FirstClick.name: lambda s: FirstClick(),
    Linear.name: lambda s: Linear(),
    TimeDecay.name: lambda s: TimeDecay(s.half_life_ms),
    PositionBased.name: lambda s: PositionBased(s.position_first, s.position_last),
    DataDriven.name: lambda s: DataDriven(s.learned),
    Shapley.name: lambda s: Shapley(s.learned),
}
if tuple(REGISTRY) != MODEL_NAMES:
    raise ImportError(f"attribution models {tuple(REGISTRY)} differ from the wire format's {MODEL_NAMES}")


def build_models(
    half_life_ms: float, position_first: Fraction, position_last: Fraction, learned: LearnedWeights | None
) -> dict[str, Model]:
    """All models by name. Without fitted weights the learned models fall back to linear."""
    fitted = learned or LearnedWeights(journeys=0, converting_journeys=0, min_journeys=1)
    settings = ModelSettings(half_life_ms, position_first, position_last, fitted)
    return {name: build(settings) for name, build in REGISTRY.items()}
