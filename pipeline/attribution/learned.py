"""Fitted parameters of the two learned models, and their versioned JSON form.

The file records what it was fitted from (journey counts, the threshold) and whether it fell back to
linear, so a reader of any attributed reward can trace which weights produced it (``weights_id``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.attribution.delay_model import DelayModel
from pipeline.attribution.shapley import Coalition

FORMAT = "rewardstream.attribution-weights"
FORMAT_VERSION = 2  # 2: Markov order and weighting, held-out order scores, journey counts (1 is still read)


@dataclass(frozen=True)
class LearnedWeights:
    journeys: int
    converting_journeys: int
    min_journeys: int
    markov_order: int = 1
    markov_weighting: str = "conversions"
    markov_order_scores: dict[int, float] = field(default_factory=dict)  # held-out log-likelihood per order
    markov_conversion_probability: float = 0.0
    removal_effects: dict[str, float] = field(default_factory=dict)
    coalitions: dict[Coalition, tuple[int, int]] = field(default_factory=dict)
    journey_counts: dict[str, int] = field(default_factory=dict)  # converted, not converted, censored, ...
    delay_model: DelayModel | None = None  # provisional rewards (see delay_model)

    @property
    def fallback(self) -> bool:
        """Too few journeys to trust: data_driven and shapley attribute as linear."""
        return self.journeys < self.min_journeys or self.converting_journeys == 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "journeys": self.journeys,
            "converting_journeys": self.converting_journeys,
            "min_journeys": self.min_journeys,
            "fallback": "linear" if self.fallback else None,
            "journey_counts": dict(self.journey_counts),
            "markov": {
                "order": self.markov_order,
                "weighting": self.markov_weighting,
                "order_scores": {str(k): v for k, v in sorted(self.markov_order_scores.items())},
                "conversion_probability": self.markov_conversion_probability,
                "removal_effects": dict(sorted(self.removal_effects.items())),
            },
            "delay_model": None if self.delay_model is None else self.delay_model.to_json(),
            "shapley": {
                "coalitions": [
                    {"channels": sorted(c), "journeys": n, "conversions": k}
                    for c, (n, k) in sorted(self.coalitions.items(), key=lambda kv: sorted(kv[0]))
                ]
            },
        }
        body["weights_id"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedWeights:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if data.get("format_version") not in (1, FORMAT_VERSION):
            raise ValueError(f"weights format_version {data.get('format_version')} is not 1 or {FORMAT_VERSION}: "
                             "fitted by a newer rewardstream? refit with this one")
        markov = data["markov"]
        return cls(
            journeys=int(data["journeys"]),
            converting_journeys=int(data["converting_journeys"]),
            min_journeys=int(data["min_journeys"]),
            markov_order=int(markov["order"]),
            markov_weighting=str(markov.get("weighting", "conversions")),
            markov_order_scores={int(k): float(v) for k, v in markov.get("order_scores", {}).items()},
            journey_counts={str(k): int(v) for k, v in data.get("journey_counts", {}).items()},
            delay_model=DelayModel.from_json(data["delay_model"]) if data.get("delay_model") else None,
            markov_conversion_probability=float(markov["conversion_probability"]),
            removal_effects={str(k): float(v) for k, v in markov["removal_effects"].items()},
            coalitions={
                frozenset(c["channels"]): (int(c["journeys"]), int(c["conversions"]))
                for c in data["shapley"]["coalitions"]
            },
        )
