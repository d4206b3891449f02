"""``rewardstream fit --report DIR``: what the learned models were fitted on and what they say, for analysts.

``fit-report.json``: journey counts (converted, not converted, censored), the first-order transition matrix,
the fitted chain's removal effects, channel credit in the aggregate convention (removal-effect share of all
conversions and of all value, as ChannelAttribution reports it), each channel's Shapley value in the grand
coalition, and the credit every model gives each channel when the engine runs the log with it (per-journey
splits, net of refunds). ``fit-report.png``: a heat map of the transitions and a bar chart of channel credit
per model.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline.attribution.fitting import aggregate_credit
from pipeline.attribution.journeys import JourneyPaths
from pipeline.attribution.learned import LearnedWeights
from pipeline.attribution.markov import CONVERSION, NULL, START, transition_counts
from pipeline.attribution.shapley import coalition_rates, shapley_values
from pipeline.engine import EngineConfig
from pipeline.events.types import MODEL_NAMES
from pipeline.model_comparison import backfill_records
from pipeline.money.currency import MINOR_UNITS


def credit_per_model(log: Path, config: EngineConfig, learned: LearnedWeights,
                     engine: str) -> dict[str, dict[str, int]]:
    """{model: {channel: base minor units}}: first splits plus refunds, as each model pays them."""
    out: dict[str, dict[str, int]] = {}
    for model in MODEL_NAMES:
        totals: dict[str, int] = defaultdict(int)
        for r in backfill_records(log, dataclasses.replace(config, default_model=model), learned, engine):
            if r["kind"] in ("attribution", "refund"):
                totals[r["channel"]] += r["amount_minor"]
        out[model] = dict(sorted(totals.items()))
    return out


def report_data(journeys: JourneyPaths, weights: LearnedWeights, config: EngineConfig,
                per_model: dict[str, dict[str, int]]) -> dict[str, Any]:
    counts = transition_counts(journeys.paths())
    states = [START, *sorted({s for pair in counts for s in pair} - {START, CONVERSION, NULL}), CONVERSION, NULL]
    row_totals = {s: sum(k for (a, _), k in counts.items() if a == s) for s in states}
    matrix = [[counts.get((a, b), 0) / row_totals[a] if row_totals[a] else 0.0 for b in states] for a in states]
    conversions = len(journeys.converted)
    # the value every model splits (first splits net of refunds), so the aggregate bars compare like with like
    value = sum(next(iter(per_model.values()), {}).values())
    channels = sorted(weights.removal_effects)
    grand = shapley_values(frozenset(channels), coalition_rates(weights.coalitions)) if channels else {}
    return {
        "journey_counts": journeys.counts(),
        "markov": {
            "order": weights.markov_order,
            "weighting": weights.markov_weighting,
            "order_scores": {str(k): v for k, v in sorted(weights.markov_order_scores.items())},
            "conversion_probability": weights.markov_conversion_probability,
            "removal_effects": weights.removal_effects,
            "first_order_transitions": {"states": states, "probabilities": matrix,
                                        "counts": [[counts.get((a, b), 0) for b in states] for a in states]},
        },
        "aggregate_credit": {
            "conversions": aggregate_credit(weights.removal_effects, conversions),
            f"value_{config.rates.base}_minor_net_of_refunds": aggregate_credit(weights.removal_effects, value),
        },
        "shapley_values": grand,
        "credit_per_model": {"currency": config.rates.base, "minor_units": per_model},
        "weights_id": weights.to_json()["weights_id"],
        "fallback": weights.fallback,
    }


def write_fit_report(out: Path, journeys: JourneyPaths, weights: LearnedWeights, config: EngineConfig, log: Path,
                     engine: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    per_model = credit_per_model(log, config, weights, engine)
    data = report_data(journeys, weights, config, per_model)
    (out / "fit-report.json").write_text(json.dumps(data, indent=2) + "\n")
    return _draw(out / "fit-report.png", data, config.rates.base)


def _draw(path: Path, data: dict[str, Any], currency: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from pipeline.report.charts import _per_channel_bars

    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 7))
    t = data["markov"]["first_order_transitions"]
    states, matrix = t["states"], np.asarray(t["probabilities"])
    image = left.imshow(matrix[:-2], cmap="viridis", vmin=0.0, vmax=max(1e-9, float(matrix.max())))
    left.set_xticks(range(len(states)), states, rotation=45, ha="right", fontsize=8)
    left.set_yticks(range(len(states) - 2), states[:-2], fontsize=8)
    for i in range(len(states) - 2):
        for j in range(len(states)):
            if matrix[i, j] >= 0.005:
                left.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if matrix[i, j] < 0.6 * matrix.max() else "black")
    counts = data["journey_counts"]
    left.set_title(f"First-order transitions ({counts['converted']:,} converted, {counts['not_converted']:,} not "
                   f"converted, {counts['censored']:,} censored journeys)", fontsize=10)
    left.set_xlabel("to")
    left.set_ylabel("from")
    fig.colorbar(image, ax=left, fraction=0.04)
    scale = 10 ** MINOR_UNITS.get(currency, 2)
    per_model = {m: {c: v / scale for c, v in totals.items()}
                 for m, totals in data["credit_per_model"]["minor_units"].items()}
    value_key = next(k for k in data["aggregate_credit"] if k.startswith("value_"))
    per_model[f"markov aggregate (order {data['markov']['order']})"] = {
        c: v / scale for c, v in data["aggregate_credit"][value_key].items()}
    _per_channel_bars(right, per_model, currency)
    right.set_title("Channel credit per model (per-journey splits; Markov aggregate: removal-effect share)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
