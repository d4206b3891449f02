"""Shapley-value attribution over channel coalitions (Zhao et al., 2018, "simplified Shapley").

A coalition's worth v(S) is the sum of the observed conversion rates of every channel set T ⊆ S.
A channel's Shapley value is its average marginal contribution to v over all orders in which the
journey's channels could have joined; values are non-negative because v only grows with S.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import factorial

Coalition = frozenset[str]


def coalition_rates(stats: Mapping[Coalition, tuple[int, int]]) -> dict[Coalition, float]:
    """(journeys, conversions) per exact channel set → conversion rate per channel set."""
    return {c: conv / n for c, (n, conv) in stats.items() if n > 0}


def shapley_values(channels: Coalition, rates: Mapping[Coalition, float]) -> dict[str, float]:
    """Shapley value of each channel in ``channels`` (k channels: O(k·2^k) after a subset-sum pass)."""
    members = sorted(channels)
    k = len(members)
    if k == 0:
        return {}
    bit = {c: 1 << i for i, c in enumerate(members)}
    full = (1 << k) - 1
    worth = [0.0] * (1 << k)
    for coalition, rate in rates.items():
        if coalition and coalition <= channels:
            mask = 0
            for c in coalition:
                mask |= bit[c]
            worth[mask] += rate
    # zeta transform: worth[S] = sum of rates of all observed T ⊆ S
    for i in range(k):
        b = 1 << i
        for mask in range(full + 1):
            if mask & b:
                worth[mask] += worth[mask ^ b]
    coef = [factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)]
    values = {}
    for c in members:
        b = bit[c]
        total = 0.0
        for mask in range(full + 1):
            if not mask & b:
                total += coef[mask.bit_count()] * (worth[mask | b] - worth[mask])
        values[c] = max(0.0, total)
    return values
