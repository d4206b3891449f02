"""Every attribution model over the same events: attributed value per channel (pure; for analysts).

Learned models (data-driven, Shapley) are fitted on the same events first, as an analyst comparing models
on last month's log would. Each conversion counts once at its first split (revision 0) and refunds count
negatively, so the totals are what each model would have paid, net of refunds.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

from pipeline.attribution.fitting import fit
from pipeline.attribution.learned import LearnedWeights
from pipeline.backfill.journeys import journeys_of_events
from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.errors import InvalidEvent
from pipeline.events.types import MODEL_NAMES, Event, RewardKind

PAYOUTS = (RewardKind.ATTRIBUTION, RewardKind.REFUND)  # a conversion's first split and its refunds


def compare_models(events: Sequence[Event], config: EngineConfig,
                   exclude_user: Callable[[str], bool] = lambda _u: False
                   ) -> tuple[dict[str, dict[str, int]], LearnedWeights]:
    """({model: {channel: base-currency minor units}}, the weights fitted for the learned models)."""
    ordered = sorted(events, key=lambda e: e.timestamp_ms)
    learned = fit(journeys_of_events(ordered, config), config.min_journeys)
    per_model: dict[str, dict[str, int]] = {}
    for model in MODEL_NAMES:
        engine = AttributionEngine(dataclasses.replace(config, default_model=model), learned)
        totals: dict[str, int] = defaultdict(int)
        for ev in ordered:
            try:
                rewards = engine.process(ev)
            except InvalidEvent:
                continue
            for r in rewards:
                if r.kind in PAYOUTS and r.revision == 0 and not exclude_user(r.user_id):
                    totals[r.channel] += r.amount_minor
        per_model[model] = dict(totals)
    return per_model, learned
