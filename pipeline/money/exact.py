"""Exact money: integer minor units, largest-remainder splits, and a fixed base-currency rates table.

Floats never carry money here. A conversion's value becomes an integer count of its currency's minor
units; a split hands out whole units so the shares add up to the value exactly, whatever the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from pipeline.errors import InvalidEvent
from pipeline.money.currency import MINOR_UNITS


def to_minor(value: Decimal, currency: str) -> int:
    """Decimal amount to integer minor units; refuses amounts finer than the currency's minor unit."""
    scaled = value.scaleb(MINOR_UNITS[currency])
    if scaled != scaled.to_integral_value():
        raise InvalidEvent("value", f"{value} has more decimals than {currency}'s {MINOR_UNITS[currency]}")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-MINOR_UNITS[currency])


def split_exact(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` minor units in proportion to non-negative integer ``weights``.

    Largest remainder (Hamilton): everyone gets floor(total·w/W); the units left over go one each to the
    largest remainders, ties to the earlier index. Integer arithmetic only, so it is exact and identical on
    every machine. A negative total is split as its magnitude and negated, so a refund mirrors a sale.
    All-zero weights split equally (a caller that wants otherwise must say so in its weights).
    """
    n = len(weights)
    if n == 0:
        raise ValueError("cannot split over zero recipients")
    if total < 0:
        return [-x for x in split_exact(-total, weights)]
    wsum = sum(weights)
    if wsum == 0:
        weights = [1] * n
        wsum = n
    shares = [0] * n
    remainders = [0] * n
    given = 0
    for i, w in enumerate(weights):
        if w < 0:
            raise ValueError(f"weights must be non-negative, got {w} at {i}")
        q, r = divmod(total * w, wsum)
        shares[i] = q
        remainders[i] = r
        given += q
    left = total - given
    if left:
        if left == 1:
            best = max(range(n), key=lambda i: (remainders[i], -i))
            shares[best] += 1
        else:
            order = sorted(range(n), key=lambda i: (-remainders[i], i))
            for i in order[:left]:
                shares[i] += 1
    return shares


@dataclass(frozen=True)
class RatesTable:
    """Fixed conversion rates to one base currency: ``rates[C]`` base units per one unit of C.

    Conversions happen once per conversion (value → base, rounded half-even to the base's minor unit);
    the base amount is then split exactly, so base shares also add up to the converted value.
    """

    base: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.base not in MINOR_UNITS:
            raise ValueError(f"base currency {self.base!r} is not an ISO 4217 code this project knows")
        for code, rate in self.rates.items():
            if code not in MINOR_UNITS:
                raise ValueError(f"rates table names unknown currency {code!r}")
            if not (isinstance(rate, Decimal) and rate.is_finite() and rate > 0):
                raise ValueError(f"rate for {code} must be a positive finite Decimal, got {rate!r}")

    def rate(self, currency: str) -> Decimal:
        if currency == self.base:
            return Decimal(1)
        try:
            return self.rates[currency]
        except KeyError:
            raise InvalidEvent(
                "currency", f"no rate from {currency} to base {self.base} is configured; refusing to guess"
            ) from None

    def to_base_minor(self, minor: int, currency: str) -> int:
        """Minor units of ``currency`` to minor units of the base currency (half-even)."""
        if currency == self.base:
            return minor
        base_units = from_minor(minor, currency) * self.rate(currency)
        return int(base_units.scaleb(MINOR_UNITS[self.base]).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
