"""Attribution settings: windows, lateness, model parameters, currencies. Immutable and I/O-free;
:meth:`EngineConfig.from_mapping` reads the ``[attribution]`` table of the project's TOML file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

from pipeline.events.types import MODEL_NAMES
from pipeline.money.exact import RatesTable
from pipeline.units import DAY_MS, HOUR_MS, SECOND_MS


@dataclass(frozen=True)
class EngineConfig:
    """Every field has a default that suits e-commerce journeys; config/example.toml's [attribution] table says
    what each one means."""

    default_model: str = "linear"
    window_ms: int = 7 * DAY_MS
    windows_ms: Mapping[str, int] = field(default_factory=dict)  # per conversion event type
    allowed_lateness_ms: int = 1 * HOUR_MS
    half_life_ms: int = 24 * HOUR_MS
    position_first: Fraction = Fraction(2, 5)
    position_last: Fraction = Fraction(2, 5)
    max_journey_length: int = 1000
    refund_retention_ms: int = 30 * DAY_MS
    max_future_skew_ms: int = 15 * 60 * SECOND_MS  # ahead of the time the event entered the log
    rates: RatesTable = field(default_factory=RatesTable)
    min_journeys: int = 100
    weights_file: str | None = None
    markov_order: str = "1"  # "1"–"4", or "auto": chosen on held-out journeys by `rewardstream fit`
    markov_weighting: str = "conversions"  # or "value": removal effects of expected value

    def __post_init__(self) -> None:
        if self.default_model not in MODEL_NAMES:
            raise ValueError(f"default_model {self.default_model!r} is not one of {MODEL_NAMES}")
        for name, ms in {"window": self.window_ms, **{f"window[{k}]": v for k, v in self.windows_ms.items()}}.items():
            if ms <= 0:
                raise ValueError(f"{name} must be positive, got {ms} ms")
        if self.allowed_lateness_ms < 0 or self.refund_retention_ms < 0 or self.max_future_skew_ms < 0:
            raise ValueError("lateness, refund retention and future skew must not be negative")
        if self.half_life_ms <= 0:
            raise ValueError("half_life must be positive")
        if self.max_journey_length < 1:
            raise ValueError("max_journey_length must be at least 1")
        if self.markov_order not in ("1", "2", "3", "4", "auto"):
            raise ValueError(f"markov_order must be 1 to 4 or auto, got {self.markov_order!r}")
        if self.markov_weighting not in ("conversions", "value"):
            raise ValueError(f"markov_weighting must be conversions or value, got {self.markov_weighting!r}")

    def window_for(self, event: str) -> int:
        return self.windows_ms.get(event, self.window_ms)

    @cached_property
    def max_window_ms(self) -> int:
        """A touchpoint can earn until this long after its own time, whatever the conversion type."""
        return max([self.window_ms, *self.windows_ms.values()])

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> EngineConfig:
        """Human units in, milliseconds out: ``window_days``, ``windows_days = {signup = 1}``,
        ``allowed_lateness_minutes``, ``half_life_hours``, ``refund_retention_days``,
        ``max_future_skew_minutes`` (or ``_hours``), ``position_first``/``position_last`` (fractions of 1),
        ``base_currency`` and ``rates = {EUR = "1.08"}`` (base units per unit), ``default_model``,
        ``max_journey_length``, ``min_journeys``, ``weights_file``, ``markov_order`` (1–4 or "auto") and
        ``markov_weighting`` ("conversions" or "value"), the last two for ``rewardstream fit``."""
        known = {"default_model", "window_days", "windows_days", "allowed_lateness_minutes", "half_life_hours",
                 "position_first", "position_last", "max_journey_length", "refund_retention_days",
                 "max_future_skew_minutes", "max_future_skew_hours", "base_currency", "rates", "min_journeys",
                 "weights_file", "markov_order", "markov_weighting"}
        unknown = set(table) - known
        if unknown:
            raise ValueError(f"unknown [attribution] settings {sorted(unknown)}; known: {sorted(known)}")

        def ms(key: str, unit: int) -> int | None:
            return _to_ms(table[key], unit, key) if key in table else None

        kwargs: dict[str, Any] = {}
        for key, attr, unit in (("window_days", "window_ms", DAY_MS),
                                ("allowed_lateness_minutes", "allowed_lateness_ms", 60 * SECOND_MS),
                                ("half_life_hours", "half_life_ms", HOUR_MS),
                                ("refund_retention_days", "refund_retention_ms", DAY_MS),
                                ("max_future_skew_hours", "max_future_skew_ms", HOUR_MS),
                                ("max_future_skew_minutes", "max_future_skew_ms", 60 * SECOND_MS)):
            value = ms(key, unit)
            if value is not None:
                kwargs[attr] = value
        if "windows_days" in table:
            kwargs["windows_ms"] = {str(k).lower(): _to_ms(v, DAY_MS, f"windows_days.{k}")
                                    for k, v in table["windows_days"].items()}
        for key in ("position_first", "position_last"):
            if key in table:
                kwargs[key] = Fraction(Decimal(str(table[key])))
        for key in ("default_model", "weights_file", "markov_order", "markov_weighting"):
            if key in table:
                kwargs[key] = str(table[key])
        for key in ("max_journey_length", "min_journeys"):
            if key in table:
                kwargs[key] = int(table[key])
        if "base_currency" in table or "rates" in table:
            kwargs["rates"] = RatesTable(
                base=str(table.get("base_currency", "USD")).upper(),
                rates={str(k).upper(): Decimal(str(v)) for k, v in table.get("rates", {}).items()},
            )
        return cls(**kwargs)


def _to_ms(value: Any, unit: int, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return int(Decimal(str(value)) * unit)
