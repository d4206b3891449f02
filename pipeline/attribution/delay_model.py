"""The delay and value model behind provisional rewards: what a touchpoint that no conversion has credited yet
is still expected to earn.

For each key (channel, campaign and, optionally, a feature of the touchpoint such as a user segment):

- the time from a touchpoint to the first conversion that credits it is a time-to-event within the attribution
  window W, estimated by **Kaplan–Meier** from completed and still-open touchpoints alike: a touchpoint credited
  after d is an event at d; one whose window closed uncredited is censored at W; one still open after e is
  censored at e. So the open ones count for exactly what is known of them (no bias from cutting the log);
- ``S(t)`` = P(not credited by t) from that curve; p = 1 − S(W) is the probability of ever being credited, and
  given no credit by t, the probability of credit yet is (S(t) − S(W)) / S(t): Chapelle's delayed-feedback
  p·S₁(t) / (1 − p + p·S₁(t)), with S₁ the survival among the credited, estimated without a parametric form;
- the **expected credited amount**: the mean final total of credited touchpoints (base currency).

The expected reward of an uncredited touchpoint after t is amount × (S(t) − S(W)) / S(t): it falls as t grows
and is 0 once the window has closed. Sparse keys borrow strength from their parents: each level (channel, then
channel + campaign, then + feature) is shrunk toward the level above with ``prior`` pseudo-observations (of
touchpoints: weighting the mean amount by credited touchpoints alone was tried and made the demo's provisional
agent worse).

Curves live on ``GRID`` bins over [0, W] (survival at the bin edges, linear in between), so a batch of a
million rows is evaluated with a few gathers. Pure numpy; versioned in the weights file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

GRID = 64
FORMAT_VERSION = 1

Key = tuple[str, ...]  # (channel,), (channel, campaign), (channel, campaign, feature)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class Curve:
    survival: FloatArray  # S at each of the GRID + 1 bin edges: S[0] = 1, S[-1] = S(W) = 1 − p
    amount: float  # mean credited total, base minor units
    n: float  # observations behind it (after shrinkage: its own)

    def to_json(self) -> dict[str, Any]:
        return {"survival": [round(float(x), 12) for x in self.survival], "amount_minor": self.amount, "n": self.n}


@dataclass
class DelayModel:
    window_ms: int
    grid_ms: FloatArray  # GRID + 1 bin edges, 0 .. window
    curves: dict[Key, Curve] = field(default_factory=dict)
    feature: str | None = None  # what the third key element is, for the record (e.g. "segment")
    base_currency: str = "USD"  # the amounts' currency (minor units): the engine's base currency

    # ------------------------------------------------------------------ predictions

    def curve(self, key: Key) -> Curve | None:
        """The most specific curve known for the key (falling back to its parents)."""
        for n in range(len(key), 0, -1):
            c = self.curves.get(tuple(key[:n]))
            if c is not None:
                return c
        return None

    def _survival_at(self, survival: FloatArray, elapsed_ms: FloatArray) -> FloatArray:
        """S(t) interpolated between bin edges (``survival`` one curve, or rows gathered per element)."""
        edges = self.grid_ms
        t = np.clip(elapsed_ms, 0.0, edges[-1])
        j = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
        frac = (t - edges[j]) / (edges[j + 1] - edges[j])
        if survival.ndim == 1:
            lo, hi = survival[j], survival[j + 1]
        else:
            rows = np.arange(len(survival))
            lo, hi = survival[rows, j], survival[rows, j + 1]
        return lo + frac * (hi - lo)

    def still_expected(self, curve: Curve, elapsed_ms: FloatArray) -> FloatArray:
        """P(credited yet | not credited after elapsed) for one curve."""
        s_t = self._survival_at(curve.survival, np.asarray(elapsed_ms, dtype=np.float64))
        return _yet(s_t, curve.survival[-1], np.asarray(elapsed_ms), self.window_ms)

    def expected_minor(self, key: Key, elapsed_ms: float) -> float:
        """Expected credited amount (base minor units) of a touchpoint still uncredited after ``elapsed_ms``."""
        c = self.curve(key)
        if c is None:
            return 0.0
        return float(c.amount * self.still_expected(c, np.asarray([elapsed_ms], dtype=np.float64))[0])

    def table(self, keys: Sequence[Key]) -> tuple[FloatArray, FloatArray]:
        """(survival rows, amounts) for ``keys``, in order: what a buffer gathers from per row."""
        rows = np.ones((len(keys), len(self.grid_ms)))
        amounts = np.zeros(len(keys))
        for i, key in enumerate(keys):
            c = self.curve(key)
            if c is not None:
                rows[i] = c.survival
                amounts[i] = c.amount
        return rows, amounts

    def expected_many(self, survival: FloatArray, amounts: FloatArray, codes: IntArray, elapsed_ms: FloatArray
                      ) -> FloatArray:
        """Vectorised ``expected_minor`` over rows given by their key codes into ``table``'s arrays."""
        rows = survival[codes]
        s_t = self._survival_at(rows, elapsed_ms)
        return amounts[codes] * _yet(s_t, rows[:, -1], elapsed_ms, self.window_ms)

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "method": "kaplan-meier per key, shrunk toward parent keys",
            "window_ms": self.window_ms, "grid_ms": [float(x) for x in self.grid_ms], "feature": self.feature,
            "base_currency": self.base_currency,
            "curves": [{"key": list(k), **c.to_json()} for k, c in sorted(self.curves.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DelayModel:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"delay model format_version {data.get('format_version')} is not {FORMAT_VERSION}")
        curves = {tuple(c["key"]): Curve(np.asarray(c["survival"], dtype=np.float64), float(c["amount_minor"]),
                                         float(c["n"])) for c in data["curves"]}
        return cls(int(data["window_ms"]), np.asarray(data["grid_ms"], dtype=np.float64), curves, data.get("feature"),
                   str(data["base_currency"]))


def _yet(s_t: FloatArray, s_w: FloatArray | float, elapsed_ms: FloatArray, window_ms: int) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(s_t > 0, (s_t - s_w) / s_t, 0.0)
    return np.where(elapsed_ms >= window_ms, 0.0, np.clip(p, 0.0, 1.0))


# ------------------------------------------------------------------------------------------------ fitting

def fit_delay_model(keys: Sequence[Key], touch_ms: npt.ArrayLike, first_credit_ms: npt.ArrayLike,
                    total_minor: npt.ArrayLike, now_ms: int | None, window_ms: int, prior: float = 20.0,
                    feature: str | None = None, base_currency: str = "USD") -> DelayModel:
    """Fit on touchpoint outcomes. ``first_credit_ms``: when a conversion first credited the touch (−1: never,
    so far); ``total_minor``: its credited total so far (final once the window has closed); ``now_ms``: the
    event time the data reaches (None: every window has closed). Keys are tuples of 1–3 strings of one length;
    each of their prefixes gets a curve."""
    depth = max((len(k) for k in keys), default=1)
    names: list[list[str]] = []
    columns = []
    for level in range(depth):
        values = sorted({k[level] for k in keys})
        code_of = {v: i for i, v in enumerate(values)}
        names.append(values)
        columns.append(np.fromiter((code_of[k[level]] for k in keys), dtype=np.int64, count=len(keys)))
    codes = np.stack(columns, axis=1) if columns else np.zeros((0, 1), dtype=np.int64)
    return fit_delay_model_coded(codes, names, touch_ms, first_credit_ms, total_minor, now_ms, window_ms, prior,
                                 feature, base_currency)


def fit_delay_model_coded(codes: IntArray, names: Sequence[Sequence[str]], touch_ms: npt.ArrayLike,
                          first_credit_ms: npt.ArrayLike, total_minor: npt.ArrayLike, now_ms: int | None,
                          window_ms: int, prior: float = 20.0, feature: str | None = None,
                          base_currency: str = "USD") -> DelayModel:
    """``fit_delay_model`` with keys given as codes (n rows × depth columns) into ``names`` per column: what the
    native engine hands over, with no tuple built per touchpoint."""
    touch = np.asarray(touch_ms, dtype=np.float64)
    credit = np.asarray(first_credit_ms, dtype=np.float64)
    total = np.asarray(total_minor, dtype=np.float64)
    grid = np.linspace(0.0, float(window_ms), GRID + 1)
    model = DelayModel(window_ms, grid, feature=feature, base_currency=base_currency)
    if len(touch) == 0:
        return model
    credited = credit >= 0
    delay = np.where(credited, np.clip(credit - touch, 0.0, window_ms), np.nan)
    elapsed = np.full(len(touch), float(window_ms)) if now_ms is None else np.clip(now_ms - touch, 0.0, window_ms)
    time_ = np.where(credited, delay, elapsed)  # event time, or censoring time
    bins = np.clip(np.searchsorted(grid, time_, side="right") - 1, 0, GRID - 1)
    km = _KaplanMeier(bins, credited, total)
    root = km(np.zeros(len(touch), dtype=np.int64), 1)
    root_amount = float(root[1][0]) if np.isfinite(root[1][0]) else 0.0
    curves: dict[Key, Curve] = {(): Curve(root[0][0], root_amount, root[2][0])}
    combined = np.zeros(len(touch), dtype=np.int64)
    bound = 1  # combined < bound
    for level in range(codes.shape[1]):
        # a code for each distinct prefix of this length
        combined = combined * (len(names[level]) + 1) + codes[:, level]
        bound *= len(names[level]) + 1
        uniq, level_codes = _distinct(combined, bound)
        survival, amount, n, k = km(level_codes, len(uniq))
        first = np.zeros(len(uniq), dtype=np.int64)
        first[level_codes[::-1]] = np.arange(len(level_codes))[::-1]  # a row holding each prefix
        for i in range(len(uniq)):
            row = codes[first[i]]
            key = tuple(names[c][row[c]] for c in range(level + 1))
            parent = curves.get(key[:-1]) or curves[()]
            w = n[i] / (n[i] + prior)
            curves[key] = Curve(w * survival[i] + (1 - w) * parent.survival,
                                w * amount[i] + (1 - w) * parent.amount if k[i] > 0 else parent.amount,
                                float(n[i]))
    model.curves = {k: c for k, c in curves.items() if k}
    return model


def _distinct(values: IntArray, bound: int) -> tuple[IntArray, IntArray]:
    """``np.unique(values, return_inverse=True)`` for values in [0, bound): by counting instead of sorting when
    the bound is not much more than the values (a sort of every touchpoint's code was a third of the fit)."""
    if bound > 4 * len(values):
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, inverse
    present = np.bincount(values, minlength=bound) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[values]


class _KaplanMeier:
    """Kaplan–Meier survival at the bin edges per key (events and censorings binned: a censoring in a bin stays
    at risk for that bin's events), the mean credited total per key (NaN where none), the observation counts and
    the credited counts. Made once for the touchpoints' bins and outcomes, called once per key level."""

    def __init__(self, bins: IntArray, credited: npt.NDArray[np.bool_], total: FloatArray) -> None:
        self.bins, self.credited = bins, credited
        self.credited_bins, self.credited_total = bins[credited], total[credited]

    def __call__(self, codes: IntArray, n_keys: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        # counts per (key, bin) cell; bincount over the flat cell index, not np.add.at, which is many times slower
        cells = n_keys * GRID
        credited_codes = codes[self.credited]
        events = np.bincount(credited_codes * GRID + self.credited_bins, minlength=cells).reshape(n_keys, GRID)
        leaving = np.bincount(codes * GRID + self.bins, minlength=cells).reshape(n_keys, GRID)
        n = np.bincount(codes, minlength=n_keys).astype(np.float64)
        at_risk = n[:, None] - np.cumsum(leaving, axis=1) + leaving  # still at risk at the start of each bin
        with np.errstate(divide="ignore", invalid="ignore"):
            hazard = np.where(at_risk > 0, events / at_risk, 0.0)
        survival = np.concatenate([np.ones((n_keys, 1)), np.cumprod(1.0 - hazard, axis=1)], axis=1)
        paid = np.bincount(credited_codes, weights=self.credited_total, minlength=n_keys)
        k = np.bincount(credited_codes, minlength=n_keys).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            amount = np.where(k > 0, paid / k, np.nan)
        return survival, amount, n, k
