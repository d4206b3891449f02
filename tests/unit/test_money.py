"""Exact money: shares add up to the value in every currency, whatever the weights."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import InvalidEvent
from pipeline.money.currency import MINOR_UNITS
from pipeline.money.exact import RatesTable, from_minor, split_exact, to_minor


@given(st.integers(-10**12, 10**12), st.lists(st.integers(0, 2**53), min_size=1, max_size=60))
def test_split_adds_up_exactly(total: int, weights: list[int]) -> None:
    shares = split_exact(total, weights)
    assert sum(shares) == total
    assert len(shares) == len(weights)


@given(st.integers(0, 10**9), st.lists(st.integers(1, 1000), min_size=1, max_size=30))
def test_each_share_is_within_one_unit_of_its_quota(total: int, weights: list[int]) -> None:
    shares = split_exact(total, weights)
    w = sum(weights)
    for s, wi in zip(shares, weights, strict=True):
        assert abs(s * w - total * wi) < w  # |share − quota| < 1


def test_remainder_ties_go_to_the_earlier_recipient() -> None:
    assert split_exact(100, [1, 1, 1]) == [34, 33, 33]
    assert split_exact(2, [1, 1, 1]) == [1, 1, 0]
    assert split_exact(-100, [1, 1, 1]) == [-34, -33, -33]


def test_zero_weights_split_evenly() -> None:
    assert split_exact(10, [0, 0]) == [5, 5]


@pytest.mark.parametrize(("currency", "value", "minor"), [("USD", "19.99", 1999), ("JPY", "1200", 1200),
                                                         ("BHD", "1.234", 1234)])
def test_minor_units_per_currency(currency: str, value: str, minor: int) -> None:
    assert to_minor(Decimal(value), currency) == minor
    assert from_minor(minor, currency) == Decimal(value)


def test_finer_than_the_minor_unit_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="more decimals"):
        to_minor(Decimal("1.005"), "USD")
    with pytest.raises(InvalidEvent, match="more decimals"):
        to_minor(Decimal("1.5"), "JPY")


def test_rates_convert_half_even_and_refuse_unknown_currencies() -> None:
    rates = RatesTable("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")})
    assert rates.to_base_minor(1000, "EUR") == 1080
    assert rates.to_base_minor(150, "JPY") == 100  # 1.005 USD → 1.00 (half-even)
    assert rates.to_base_minor(1999, "USD") == 1999
    with pytest.raises(InvalidEvent, match="refusing to guess"):
        rates.to_base_minor(100, "GBP")


def test_minor_unit_table_has_the_named_examples() -> None:
    assert (MINOR_UNITS["USD"], MINOR_UNITS["JPY"], MINOR_UNITS["BHD"]) == (2, 0, 3)
