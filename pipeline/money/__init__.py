"""Exact money, below everything else: ISO 4217 minor units, conversions to and from integer minor units,
splits that add up to the cent, exchange rates as exact ratios. Imports nothing from the rest of the package
but its error type.

May import: ``pipeline.errors``."""

from pipeline.money.currency import MINOR_UNITS
from pipeline.money.exact import RatesTable, from_minor, split_exact, to_minor

__all__ = ["MINOR_UNITS", "RatesTable", "from_minor", "split_exact", "to_minor"]
