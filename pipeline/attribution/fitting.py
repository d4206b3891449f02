"""Fit the learned models from completed journeys.

A journey is the channel sequence of one user's touchpoints that ended either in a conversion (the
touchpoints inside that conversion's window) or in nothing (touchpoints whose window closed without one).
Refunds do not make journeys. Events are taken per user in event-time order, so file order is irrelevant.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.markov import removal_effects
from pipeline.attribution.shapley import Coalition
from pipeline.events.types import Conversion, Event, Touchpoint

Journey = tuple[tuple[str, ...], bool]


def completed_journeys(events: Iterable[Event], window_ms: Callable[[str], int]) -> list[Journey]:
    """Segment each user's touchpoints into converting and non-converting journeys."""
    per_user: dict[str, list[Event]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, Conversion) and ev.refund_of is not None:
            continue
        per_user[ev.user_id].append(ev)
    journeys: list[Journey] = []
    for user in sorted(per_user):
        # touchpoints before conversions at the same instant, so a same-time touch can convert
        timeline = sorted(per_user[user], key=lambda e: (e.timestamp_ms, isinstance(e, Conversion)))
        open_touches: list[Touchpoint] = []
        for ev in timeline:
            if isinstance(ev, Touchpoint):
                open_touches.append(ev)
                continue
            start = ev.timestamp_ms - window_ms(ev.event)
            expired = [t for t in open_touches if t.timestamp_ms < start]
            inside = [t for t in open_touches if t.timestamp_ms >= start]
            if expired:
                journeys.append((tuple(t.channel for t in expired), False))
            if inside:
                journeys.append((tuple(t.channel for t in inside), True))
            open_touches = []
        if open_touches:
            journeys.append((tuple(t.channel for t in open_touches), False))
    return journeys


def fit(journeys: list[Journey], min_journeys: int) -> LearnedWeights:
    converting = sum(1 for _, converted in journeys if converted)
    probability, effects = removal_effects(journeys)
    stats: Counter[Coalition] = Counter()
    conversions: Counter[Coalition] = Counter()
    for channels, converted in journeys:
        coalition = frozenset(channels)
        stats[coalition] += 1
        conversions[coalition] += int(converted)
    return LearnedWeights(
        journeys=len(journeys),
        converting_journeys=converting,
        min_journeys=min_journeys,
        markov_conversion_probability=probability,
        removal_effects=effects,
        coalitions={c: (n, conversions[c]) for c, n in stats.items()},
    )
