"""Fit the learned models on the engine's completed journeys (see ``journeys``): the Markov removal effects
(order 1–4, or chosen on held-out journeys), weighted by conversions or by value, and the Shapley coalition
statistics. Censored journeys (still open when the log ended) are left out."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

import numpy as np

from pipeline.attribution.delay_model import DelayModel, fit_delay_model_coded
from pipeline.attribution.journeys import JourneyPaths, Journeys
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.markov import Chain, Folded, choose_order, fold, fold_counted, weighted
from pipeline.attribution.shapley import Coalition

Path = tuple[tuple[str, ...], bool]
WEIGHTINGS = ("conversions", "value")


def fit(journeys: Journeys | JourneyPaths | Iterable[Path], min_journeys: int, order: int | str = 1,
        weighting: str = "conversions") -> LearnedWeights:
    """``order``: 1–4, or "auto" (the best held-out log-likelihood). ``weighting``: "conversions" or "value"
    (needs the journeys' values: ``Journeys`` or ``JourneyPaths``)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be conversions or value, got {weighting!r}")
    if isinstance(journeys, Journeys):
        journeys = journeys.as_paths()
    lean: JourneyPaths | None = None
    if isinstance(journeys, JourneyPaths):
        lean = journeys
        paths: list[tuple[tuple[str, ...], bool, float]] = []  # one by one only if needed (below)
        n_paths, n_converting = len(lean.converted) + len(lean.lapsed), len(lean.converted)
        counts = lean.counts()
    else:
        if weighting != "conversions":
            raise ValueError("value weighting needs the journeys' values")
        paths = [(tuple(c), conv, 1.0) for c, conv in journeys]
        n_paths, n_converting = len(paths), sum(1 for p in paths if p[1])
        counts = {"converted": n_converting, "not_converted": n_paths - n_converting}
    # conversion-weighted journeys are folded by counting; the order's choice and value weighting take them one
    # by one
    counted = lean if weighting == "conversions" else None
    if lean is not None and (order == "auto" or counted is None):
        paths = [(c, True, float(v)) for c, v in lean.converted] + [(c, False, 0.0) for c in lean.lapsed]
    weighted_paths = weighted(paths, weighting)
    scores: dict[int, float] = {}
    if order == "auto":
        chosen, scores = choose_order(weighted_paths)
    elif isinstance(order, int) or (isinstance(order, str) and order.isdigit()):
        chosen = int(order)
    else:
        raise ValueError(f"Markov order must be 1–4 or auto, got {order!r}")
    # once, for the chain and the coalitions
    folded = fold(weighted_paths) if counted is None else fold_counted([c for c, _ in counted.converted],
                                                                       counted.lapsed)
    probability, effects = Chain.of_folded(folded, chosen).removal_effects()
    return LearnedWeights(
        journeys=n_paths,
        converting_journeys=n_converting,
        min_journeys=min_journeys,
        markov_order=chosen,
        markov_weighting=weighting,
        markov_order_scores=scores,
        markov_conversion_probability=probability,
        removal_effects=effects,
        coalitions=coalition_stats(folded),
        journey_counts=counts,
    )


def fit_delay(paths: JourneyPaths, window_ms: int, base_currency: str, prior: float = 20.0) -> DelayModel:
    """The delay and value model on the journeys' touchpoint outcomes, keyed by (channel, campaign)."""
    o = paths.outcomes
    if o is None:
        raise ValueError("the journeys carry no touchpoint outcomes")
    codes = np.stack([o.channel, o.campaign], axis=1)
    return fit_delay_model_coded(codes, [o.names, o.names], o.touch_ms, o.first_credit_ms, o.total_minor,
                                 paths.end_ms, window_ms, prior, base_currency=base_currency)


def coalition_stats(folded: Folded) -> dict[Coalition, tuple[int, int]]:
    """(journeys, conversions) per exact channel set: the Shapley model's input. From folded paths: each distinct
    path's channel set is made once."""
    stats: dict[Coalition, list[int]] = {}
    for coalition, (_, converted), (_, n) in zip(map(frozenset, map(itemgetter(0), folded)), folded, folded.values(),
                                                 strict=True):
        counted = stats.get(coalition)
        if counted is None:
            counted = stats[coalition] = [0, 0]
        counted[0] += n
        if converted:
            counted[1] += n
    return {c: (n, converted) for c, (n, converted) in stats.items()}


def aggregate_credit(effects: dict[str, float], total: float) -> dict[str, float]:
    """Channel totals by removal-effect share of all conversions (or value): ChannelAttribution's convention,
    beside the engine's per-journey split."""
    s = sum(effects.values())
    return {c: (e / s * total if s > 0 else 0.0) for c, e in sorted(effects.items())}

