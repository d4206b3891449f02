"""Every attribution model over the same events: attributed value per channel (pure; for analysts), and, on a
market that knows its causal truth, each model scored against it.

Learned models (data-driven, Shapley) are fitted on the same events first, as an analyst comparing models
on last month's log would. Each conversion counts once at its first split (revision 0) and refunds count
negatively, so the totals are what each model would have paid, net of refunds.

The scoring (:func:`evaluate_models`) runs each model through the backfill engine (the native one by default:
the same attribution engine the stream worker runs, over the log in event-time order, no Kafka), so a model's
rewards are the ones the pipeline would have paid, and compares them with the market's record of what each
touch caused. Per model:

- **error**: Σ over channels of |attributed value − true incremental value| ÷ Σ true incremental value. Every
  model pays out the whole of each conversion it attributes, organic ones included, so this has a floor that
  no split can go under; **share error** (half the L1 distance between the channel shares of attributed and of
  true value) is the split alone;
- **organic to ads**: the share of organic value (conversions no ad caused) that the model hands to ads. A
  rule that splits a whole conversion among its touchpoints hands over every organic conversion that has a
  touchpoint in its window, so this is the window's figure, the same for every model that splits whole
  conversions;
- **policy**: an agent (the demo's learner) fitted on each touchpoint's final reward under the model, its
  greedy policy's true value as a fraction of the oracle's.

May import: ``pipeline.attribution``, ``pipeline.backfill``, ``pipeline.engine``, ``pipeline.errors``,
``pipeline.events``, ``pipeline.market``, ``pipeline.money``, ``pipeline.native``."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.attribution.fitting import fit
from pipeline.attribution.learned import LearnedWeights
from pipeline.backfill.journeys import journeys_of_events, paths_of_log
from pipeline.backfill.lines import Chunk, read_chunks, with_ahead
from pipeline.engine import AttributionEngine, EngineConfig
from pipeline.errors import InvalidEvent
from pipeline.events.types import MODEL_NAMES, AttributionModel, Event, RewardKind
from pipeline.market import CHANNELS, SEGMENTS, MarketSpec, ThompsonAgent
from pipeline.market.env import Truth
from pipeline.money.currency import MINOR_UNITS
from pipeline.native.choice import backfill_engine

PAYOUTS = (RewardKind.ATTRIBUTION, RewardKind.REFUND)  # a conversion's first split and its refunds
ORDER_AUTO = "data_driven_order_auto"  # data-driven with the Markov order chosen on held-out journeys
EVALUATED = (*MODEL_NAMES, ORDER_AUTO)
LEARNED = (AttributionModel.DATA_DRIVEN, AttributionModel.SHAPLEY, ORDER_AUTO)


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


def backfill_records(log: Path, config: EngineConfig, learned: LearnedWeights | None, engine: str
                     ) -> Iterator[dict[str, Any]]:
    """The reward records the backfill engine pays over ``log`` (JSON Lines of events, event-time order)."""
    runner = backfill_engine(engine, config, learned, time.time_ns() // 1_000_000)
    with open(log, "rb") as fh:
        for piece, ahead in with_ahead(read_chunks(fh)):
            if isinstance(piece, Chunk):
                yield from map(orjson.loads, runner.feed(piece.data, piece.first_line, ahead=ahead)[0].splitlines())
    yield from map(orjson.loads, runner.finish().splitlines())


@dataclass
class ModelScore:
    model: str
    per_channel: dict[str, float]  # attributed value, base currency units
    error: float
    share_error: float
    organic_to_ads: float
    policy: tuple[str, ...]  # channel per segment
    policy_fraction: float  # of the oracle's value


@dataclass
class Evaluation:
    market: str
    seed: int
    truth_per_channel: dict[str, float]
    incremental_value: float
    organic_value: float
    oracle_value: float
    truth_policy_fraction: float  # an agent fitted on the true incremental credit of each touch
    scores: list[ModelScore] = field(default_factory=list)
    markov_order_chosen: int = 1

    def score(self, model: str) -> ModelScore:
        return next(s for s in self.scores if s.model == model)

    def ranked(self) -> list[ModelScore]:
        """Lowest error first (the split's error breaks ties: see the module doc for the error's floor)."""
        return sorted(self.scores, key=lambda s: (round(s.error, 4), s.share_error))

    def label(self, model: str) -> str:
        return model if model != ORDER_AUTO else f"data_driven order {self.markov_order_chosen}"

    def headline(self) -> str:
        """The best model on the market, by how much, and against last click; the best agent."""
        ranked = self.ranked()
        best, second = ranked[0], ranked[min(1, len(ranked) - 1)]
        last = self.score(AttributionModel.LAST_CLICK)
        agent = max(self.scores, key=lambda s: s.policy_fraction)
        gap = f"tied on error with {self.label(second.model)}" if round(second.error, 4) == round(best.error, 4) \
            else f"{(second.error - best.error) * 100:.1f} points of error below {self.label(second.model)}"
        against = "" if AttributionModel.LAST_CLICK in (best.model, second.model) else \
            f"; last_click: error {last.error:.1%}, share error {last.share_error:.1%}"
        return (f"best model on the {self.market} market: {self.label(best.model)} (error {best.error:.1%}, "
                f"share error {best.share_error:.1%}; {gap}, share error {second.share_error:.1%}{against}); "
                f"its agent reaches {best.policy_fraction:.1%} of the oracle; best agent: {self.label(agent.model)} "
                f"{agent.policy_fraction:.1%} (fitted on the true credit: {self.truth_policy_fraction:.1%})")

    def table(self) -> list[str]:
        channels = list(self.truth_per_channel)
        head = f"{'model':<24}" + "".join(f"{c:>10}" for c in channels) + \
            f"{'error':>8}{'share err':>10}{'organic→ads':>12}{'policy/oracle':>14}"
        rows = [head, f"{'true incremental':<24}" + "".join(f"{self.truth_per_channel[c]:>10,.0f}" for c in channels)
                + f"{'':>8}{'':>10}{'':>12}{self.truth_policy_fraction:>14.1%}"]
        for s in self.scores:
            rows.append(f"{self.label(s.model):<24}" + "".join(f"{s.per_channel.get(c, 0.0):>10,.0f}" for c in channels)
                        + f"{s.error:>8.1%}{s.share_error:>10.1%}{s.organic_to_ads:>12.1%}{s.policy_fraction:>14.1%}")
        return rows

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ranked": [s.model for s in self.ranked()]}


def evaluate_models(log: Path, truth: dict[str, Truth], spec: MarketSpec, config: EngineConfig,
                    engine: str = "native", models: Sequence[str] = EVALUATED) -> Evaluation:
    """Score every model's rewards over ``log`` (the market's events) against ``truth`` (see the module doc)."""
    scale = 10.0 ** -MINOR_UNITS[config.rates.base]
    touches: dict[str, tuple[int, int, int]] = {}  # touchpoint id → (channel, segment, row)
    by_time: dict[tuple[str, int], str] = {}  # (campaign, event time) → touchpoint id
    logged: set[str] = set()  # conversions in the log (the truth may know of some not yet due)
    with open(log, "rb") as fh:
        for line in fh:
            ev = orjson.loads(line)
            if "conversion_id" in ev:
                logged.add(ev["conversion_id"])
            elif "touchpoint_id" in ev:
                touches[ev["touchpoint_id"]] = (CHANNELS.index(ev["channel"]), int(np.argmax(ev["state"])),
                                                len(touches))
                key = (ev["campaign_id"], int(ev["timestamp"]))
                if by_time.setdefault(key, ev["touchpoint_id"]) != ev["touchpoint_id"]:
                    raise ValueError(f"two touchpoints of campaign {key[0]} at {key[1]} ms: the truth names a "
                                     "touch by its campaign and event time, which must be unique")
    segments = np.fromiter((s for _, s, _ in touches.values()), dtype=np.int64, count=len(touches))
    actions = np.fromiter((c for c, _, _ in touches.values()), dtype=np.int64, count=len(touches))
    true_credit = np.zeros(len(touches))
    organic_value = 0.0
    organic_of: dict[str, float] = {}
    for cid, t in truth.items():
        if cid not in logged:
            continue
        organic_value += t.value * t.organic
        if t.organic:
            organic_of[cid] = t.value * t.organic
        for when, share in t.touches:
            tid = by_time.get((t.campaign, when))
            if tid is not None:
                true_credit[touches[tid][2]] += t.value * share
    truth_per_channel = {c: float(true_credit[actions == i].sum()) for i, c in enumerate(CHANNELS)}
    oracle = spec.policy_value(spec.oracle_policy())

    def policy_fraction(rewards: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[tuple[str, ...], float]:
        agent = ThompsonAgent(len(SEGMENTS), len(CHANNELS), seed=spec.seed)
        agent.fit(segments, actions, rewards)
        policy = agent.greedy_policy()
        return tuple(CHANNELS[a] for a in policy), spec.policy_value(policy) / oracle

    paths = paths_of_log(log, config, engine)[0]
    weights = {"1": fit(paths, config.min_journeys, order=1)}
    if ORDER_AUTO in models:
        weights["auto"] = fit(paths, config.min_journeys, order="auto")
    result = Evaluation(spec.name, spec.seed, truth_per_channel, float(true_credit.sum()), organic_value, oracle,
                        policy_fraction(true_credit)[1],
                        markov_order_chosen=weights["auto"].markov_order if "auto" in weights else 1)
    total_true = max(sum(truth_per_channel.values()), 1e-9)
    for model in models:
        name, learned = ((AttributionModel.DATA_DRIVEN.value, weights["auto"]) if model == ORDER_AUTO
                         else (model, weights["1"]))
        paid = np.zeros(len(touches))
        given: set[str] = set()
        for r in backfill_records(log, dataclasses.replace(config, default_model=name), learned, engine):
            if r["kind"] == "final":
                paid[touches[r["touchpoint_id"]][2]] += r["amount_minor"] * scale
            elif r["kind"] == "attribution" and r["amount_minor"]:
                given.add(r["conversion_id"])
        per_channel = {c: float(paid[actions == i].sum()) for i, c in enumerate(CHANNELS)}
        error = sum(abs(per_channel[c] - truth_per_channel[c]) for c in CHANNELS) / total_true
        total_paid = max(sum(per_channel.values()), 1e-9)
        share_error = 0.5 * sum(abs(per_channel[c] / total_paid - truth_per_channel[c] / total_true)
                                for c in CHANNELS)
        organic = sum(v for cid, v in organic_of.items() if cid in given) / max(organic_value, 1e-9)
        policy, fraction = policy_fraction(paid)
        result.scores.append(ModelScore(model, per_channel, error, share_error, organic, policy, fraction))
    return result

