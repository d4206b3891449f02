"""Markov-chain attribution of order 1 to 4: a channel's worth is how much conversion probability the journey
graph loses when that channel is removed (its removal effect).

A state is the last ``order`` channels of a path (fewer at its start), plus ``start``, ``conversion`` and
``null``. Transition probabilities are the observed frequencies; the probability of reaching ``conversion``
from ``start`` is an absorbing-chain solve. Removing a channel removes every state that contains it: paths
that would have entered one go to ``null`` (the convention of ChannelAttribution and of Anderl et al. 2016).

Paths may be weighted: by conversions (every path counts once, the literature's default) or by value (a
converting path counts its value over the mean converting value, so the chain's conversion probability is
value-weighted and a removal effect is the share of expected value lost).

``choose_order`` picks the order by held-out log-likelihood: every fifth journey is held out, each order's
chain is fitted on the rest with additive smoothing and backoff to lower orders for unseen states, and the
order that predicts the held-out journeys' steps best wins.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"
MAX_ORDER = 4

State = tuple[str, ...]  # the last `order` channels; () is start
WeightedPath = tuple[Sequence[str], bool, float]  # channels, converted, weight


def transition_counts(paths: Iterable[tuple[Sequence[str], bool]]) -> Counter[tuple[str, str]]:
    """Order-1 transition counts with named start/conversion/null states (for reports and heat maps)."""
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


Folded = dict[tuple[tuple[str, ...], bool], tuple[float, int]]  # (channels, converted) → (weight, journeys)


def fold(paths: Iterable[WeightedPath]) -> Folded:
    """Identical (channels, converted) paths as one, with their weights summed and counted; empty paths left out.
    Tens of thousands of journeys take a few thousand distinct paths, so the steps are walked once per path, not
    per journey. In the order each path first occurs, so states enter a chain in the order they would unfolded;
    with weights of 1 (conversions) the counts are the same integers, with value weights the same sums in
    another order (they may differ in the last bit)."""
    folded: Folded = {}
    for channels, converted, weight in paths:
        if channels:
            key = (tuple(channels), converted)
            w, n = folded.get(key, (0.0, 0))
            folded[key] = (w + weight, n + 1)
    return folded


def fold_counted(converted: Iterable[Sequence[str]], lapsed: Iterable[Sequence[str]]) -> Folded:
    """``fold`` of paths that weigh 1 each (conversions weighting), the converted ones first: identical paths
    are counted by ``Counter`` (in C), not one by one. The same folded paths in the same order, with the same
    weights (sums of ones are exact)."""
    folded: Folded = {}
    for converted_, paths in ((True, converted), (False, lapsed)):
        for channels, n in Counter(map(tuple, paths)).items():
            if channels:
                folded[(channels, converted_)] = (float(n), n)
    return folded


@dataclass
class Chain:
    """Weighted transition counts between states of one order."""

    order: int
    counts: dict[State, dict[State | str, float]]

    @classmethod
    def fit(cls, paths: Iterable[WeightedPath], order: int) -> Chain:
        return cls.of_folded(fold(paths), order)

    @classmethod
    def of_folded(cls, folded: Folded, order: int) -> Chain:
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"Markov order must be 1 to {MAX_ORDER}, got {order}")
        if order == 1:
            return cls(1, _first_order_counts(folded))
        counts: dict[State, dict[State | str, float]] = defaultdict(lambda: defaultdict(float))
        for (channels, converted), (weight, _) in folded.items():
            # (state, next state) along the path, then into conversion or null; written out, not a generator:
            # this loop was most of `rewardstream fit`'s time in Python
            state: State = ()
            for ch in channels:
                nxt = (*state, ch)[-order:] if order > 1 else (ch,)
                counts[state][nxt] += weight
                state = nxt
            counts[state][CONVERSION if converted else NULL] += weight
        return cls(order, {s: dict(c) for s, c in counts.items()})

    def channels(self) -> list[str]:
        return sorted({c for s in self.counts for c in s})

    def conversion_probability(self, removed: str | None = None) -> float:
        """P(reach conversion from start); with ``removed``, states containing it lead to null."""
        states = [s for s in self.counts if s != () and (removed is None or removed not in s)]
        idx = {s: i for i, s in enumerate(states)}
        n = len(states)
        start = self.counts.get(())
        if not start:
            return 0.0
        src, dst, w = [], [], []
        r = np.zeros(n)
        totals = np.zeros(n)
        for s, i in idx.items():
            for nxt, k in self.counts[s].items():
                totals[i] += k
                if nxt == CONVERSION:
                    r[i] += k
                elif isinstance(nxt, tuple) and nxt in idx:
                    src.append(i)
                    dst.append(idx[nxt])
                    w.append(k)
        safe = np.where(totals > 0, totals, 1.0)
        r /= safe
        start_total = float(sum(start.values()))
        start_to = np.zeros(n)
        for nxt, k in start.items():
            if isinstance(nxt, tuple) and nxt in idx:
                start_to[idx[nxt]] += k
        if n <= 600:  # exact: (I − Q) p = r
            q = np.zeros((n, n))
            np.add.at(q, (np.array(src, dtype=np.intp), np.array(dst, dtype=np.intp)), np.array(w, dtype=float))
            q /= safe[:, None]
            a = np.eye(n) - q
            try:
                p = np.linalg.solve(a, r)
            except np.linalg.LinAlgError:
                p = np.linalg.lstsq(a, r, rcond=None)[0]
        else:  # sparse fixed point p = r + Q p (paths are finite: it converges geometrically)
            s_arr, d_arr = np.array(src, dtype=np.intp), np.array(dst, dtype=np.intp)
            w_arr = np.array(w, dtype=float) / safe[s_arr]
            p = r.copy()
            for _ in range(100_000):
                nxt_p = r + np.bincount(s_arr, weights=w_arr * p[d_arr], minlength=n)
                if np.max(np.abs(nxt_p - p)) <= 1e-15 * max(1.0, float(np.max(nxt_p))):
                    p = nxt_p
                    break
                p = nxt_p
        return float(start_to @ p / start_total)

    def removal_effects(self) -> tuple[float, dict[str, float]]:
        """(conversion probability, removal effect per channel in [0, 1])."""
        channels = self.channels()
        base = self.conversion_probability()
        if base <= 0:
            return base, dict.fromkeys(channels, 0.0)
        return base, {ch: min(1.0, max(0.0, 1.0 - self.conversion_probability(ch) / base)) for ch in channels}


def _first_order_counts(folded: Folded) -> dict[State, dict[State | str, float]]:
    """``Chain.of_folded``'s counts at order 1: counted with channel names as keys (a string keeps its hash, a
    one-channel state's tuple hashes its member again at every step), then keyed by the states they stand for,
    in the same order, with the same sums. None is start; 0 and 1 are conversion and null (never a channel)."""
    rows: defaultdict[str | None, defaultdict[str | int, float]] = defaultdict(lambda: defaultdict(float))
    for (channels, converted), (weight, _) in folded.items():
        state: str | None = None
        for ch in channels:
            rows[state][ch] += weight
            state = ch
        rows[state][0 if converted else 1] += weight
    ends = (CONVERSION, NULL)
    return {(() if s is None else (s,)): {((k,) if isinstance(k, str) else ends[k]): w for k, w in row.items()}
            for s, row in rows.items()}


def weighted(paths: Iterable[tuple[Sequence[str], bool, float]], by: str) -> list[WeightedPath]:
    """Paths with their weights: ``conversions`` (1 each) or ``value`` (a converting path's value over the
    mean converting value; non-converting paths 1)."""
    paths = list(paths)
    if by == "conversions":
        return [(c, conv, 1.0) for c, conv, _ in paths]
    if by != "value":
        raise ValueError(f"weighting must be conversions or value, got {by!r}")
    values = [v for _, conv, v in paths if conv]
    mean = sum(values) / len(values) if values else 1.0
    return [(c, conv, (v / mean if mean > 0 else 1.0) if conv else 1.0) for c, conv, v in paths]


def removal_effects(paths: Iterable[tuple[Sequence[str], bool]], order: int = 1) -> tuple[float, dict[str, float]]:
    """(baseline conversion probability, removal effect per channel), every path counted once."""
    return Chain.fit(((c, conv, 1.0) for c, conv in paths), order).removal_effects()


# ------------------------------------------------------------------------------------------------ order choice

def _held_out(i: int) -> bool:
    return i % 5 == 4


class _HeldOut:
    """Chains of orders 1 to ``max_order`` fitted once on the training paths, to score held-out paths under any
    of those orders (``choose_order`` scores four orders on one split)."""

    def __init__(self, train: Sequence[WeightedPath], test: Sequence[WeightedPath], max_order: int,
                 alpha: float) -> None:
        alphabet = {c for p in train for c in p[0]} | {c for p in test for c in p[0]}
        self.outcomes = len(alphabet) + 2  # every channel, conversion, null
        self.test, self.alpha = test, alpha
        folded = fold(train)  # once for every order's chain
        self.chains = {k: Chain.of_folded(folded, k).counts for k in range(1, max_order + 1)}
        # each state's total: the same sum at every step that passes through it
        self.seen = {k: {s: sum(row.values()) for s, row in counts.items()} for k, counts in self.chains.items()}

    def scores(self, orders: Sequence[int]) -> dict[int, float]:
        """Mean log-likelihood per step of the held-out paths under each order, with additive smoothing over the
        next-state alphabet and backoff to the next lower order for unseen states. One pass for all orders: at
        each step, order k's probability is its own state's if the chain has that state, else order k - 1's."""
        alpha, outcomes = self.alpha, self.outcomes
        top = max(orders)
        totals = dict.fromkeys(orders, 0.0)
        steps = 0
        for channels, converted, weight in self.test:
            if not channels:
                continue
            history: tuple[str, ...] = ()
            for nxt in [*channels, CONVERSION if converted else NULL]:
                ends = nxt in (CONVERSION, NULL)
                prob = 0.0  # order 0: no state seen
                for k in range(1, top + 1):
                    state = history[-k:] if history else ()
                    counts = self.chains[k].get(state)
                    if counts:
                        label = nxt if ends else (*history, nxt)[-k:]
                        prob = (counts.get(label, 0.0) + alpha) / (self.seen[k][state] + alpha * outcomes)
                    if k in totals:
                        totals[k] += weight * math.log(prob if prob != 0.0 else 1.0 / outcomes)
                steps += 1
                if not ends:
                    history = (*history, nxt)[-MAX_ORDER:]
        return {k: (totals[k] / steps if steps else float("-inf")) for k in orders}


def choose_order(paths: Sequence[WeightedPath], orders: Sequence[int] = (1, 2, 3, 4)) -> tuple[int, dict[int, float]]:
    """The order with the best held-out log-likelihood (ties to the lower order), and each order's figure."""
    train = [p for i, p in enumerate(paths) if not _held_out(i)]
    test = [p for i, p in enumerate(paths) if _held_out(i)]
    scores = _HeldOut(train, test, max(orders), alpha=0.5).scores(orders)
    best = max(orders, key=lambda k: (round(scores[k], 9), -k))
    return best, scores
