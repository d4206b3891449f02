"""First-order Markov-chain attribution: a channel's worth is how much conversion probability the
journey graph loses when that channel is removed (the removal effect).

States are ``start``, each channel, ``conversion`` and ``null``. Transition probabilities come from
observed journeys; the probability of reaching ``conversion`` from ``start`` is an absorbing-chain solve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"


def transition_counts(paths: Iterable[tuple[Sequence[str], bool]]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for channels, converted in paths:
        if not channels:
            continue
        prev = START
        for ch in channels:
            counts[(prev, ch)] += 1
            prev = ch
        counts[(prev, CONVERSION if converted else NULL)] += 1
    return counts


def _conversion_probability(channels: list[str], counts: Counter[tuple[str, str]], removed: str | None) -> float:
    """P(reach conversion from start) with ``removed``'s inbound transitions redirected to null."""
    idx = {c: i for i, c in enumerate(channels)}
    n = len(channels)
    q = np.zeros((n, n))
    r = np.zeros(n)
    totals = np.zeros(n)
    start_to = np.zeros(n)
    start_total = 0.0
    for (src, dst), k in counts.items():
        if src == START:
            start_total += k
            if dst != removed:
                start_to[idx[dst]] += k
            continue
        i = idx[src]
        totals[i] += k
        if dst == CONVERSION:
            r[i] += k
        elif dst != NULL and dst != removed:
            q[i, idx[dst]] += k
    if start_total == 0:
        return 0.0
    safe = np.where(totals > 0, totals, 1.0)
    q /= safe[:, None]
    r /= safe
    if removed is not None:
        # the removed state converts nobody and leads nowhere
        q[idx[removed], :] = 0.0
        r[idx[removed]] = 0.0
    a = np.eye(n) - q
    try:
        p = np.linalg.solve(a, r)
    except np.linalg.LinAlgError:
        p = np.linalg.lstsq(a, r, rcond=None)[0]
    return float(start_to @ p / start_total)


def removal_effects(paths: Iterable[tuple[Sequence[str], bool]]) -> tuple[float, dict[str, float]]:
    """(baseline conversion probability, removal effect per channel in [0, 1])."""
    counts = transition_counts(paths)
    channels = sorted({c for pair in counts for c in pair} - {START, CONVERSION, NULL})
    if not channels:
        return 0.0, {}
    base = _conversion_probability(channels, counts, None)
    if base <= 0:
        return 0.0, dict.fromkeys(channels, 0.0)
    effects = {}
    for ch in channels:
        without = _conversion_probability(channels, counts, ch)
        effects[ch] = min(1.0, max(0.0, 1.0 - without / base))
    return base, effects
