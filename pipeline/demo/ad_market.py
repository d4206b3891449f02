"""Three agents learn channel choice in the simulated market through the real pipeline.

Each publishes every impression as a touchpoint (Gymnasium wrapper → producer → Kafka); the market publishes
the conversions those impressions cause, days later on the simulated clock; a worker attributes them; one
replay buffer reads the attributed rewards back. The click agent refits on the buffer's immediate rewards,
the attribution agent on its *final* attributed rewards, the provisional agent on every experience's
``reward``: the delay model's expected reward until a conversion credits it, then the attributed amount, then
the final one (the delay model is refitted each day on the buffer's columns, censored rows included, keyed by
channel, campaign and the user's segment). Each simulated day ends by waiting until the
worker has processed everything and the buffer holds every experience the agents will learn from, so a
seed gives the same learning curves on any machine, at any speed. Nothing is sent to keep the worker's clock
moving: at the end of a day every input partition is caught up and silent, so none holds the watermark back
and the day's finals fall due by the touchpoints' own event time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from pipeline.attribution.delay_model import fit_delay_model
from pipeline.events.jsonl import event_to_json
from pipeline.events.types import Event, Touchpoint
from pipeline.gym import DelayedRewardWrapper
from pipeline.market import (
    CHANNELS,
    DEFAULT_MARKET,
    MARKETS,
    SEGMENTS,
    AdMarketEnv,
    Market,
    MarketSpec,
    ThompsonAgent,
    Truth,
)
from pipeline.money.currency import MINOR_UNITS
from pipeline.producers import ConversionProducer, TouchpointProducer
from pipeline.replay import ReplayBuffer
from pipeline.settings import Settings
from pipeline.shell.worker_process import WorkerProcess
from pipeline.units import DAY_MS

START_MS = 1_780_272_000_000  # 2026-06-01T00:00:00Z: the simulated clock's first impression
AGENTS = ("click-agent", "attribution-agent", "provisional-agent")


def simulated_past_seconds(plan_days: int, now_ms: int | None = None) -> int:
    """How far behind the wall clock the market's simulated events can be. The worker is told its events may
    arrive that late, so the wall clock never moves its event time (which it would do for a live feed whose
    partitions fall silent); each day's finals come from the day's own touchpoints."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return max(0, now_ms - START_MS) // 1000 + (plan_days + 1) * DAY_MS // 1000


@dataclass(frozen=True)
class DemoPlan:
    days: int = 40
    impressions_per_hour: int = 60  # per agent
    seed: int = 7
    window_days: int = 7
    settle_timeout: float = 120.0  # seconds to wait for the pipeline at the end of a simulated day
    market: str = DEFAULT_MARKET  # a preset of pipeline.market.MARKETS

    def spec(self) -> MarketSpec:
        """The market: the preset at the plan's seed, its organic conversions drawn over the plan's days."""
        return dataclasses.replace(MARKETS[self.market](self.seed), horizon_days=float(self.days))


@dataclass
class DayRecord:
    day: int
    policy_value: dict[str, float]  # expected conversion value per 1,000 impressions of the greedy policy
    realized_value: dict[str, float]  # value the day's impressions actually caused, per 1,000 impressions
    oracle_value: float
    worker_events_per_s: float
    conversions_attributed: int
    watermark_lag_hours: float | None
    learned_from: dict[str, int]
    predictions: list[tuple[str, str, float]] = field(default_factory=list)  # (touchpoint, channel, expected)


@dataclass
class DemoResult:
    days: list[DayRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    buffer_stats: dict[str, Any] = field(default_factory=dict)
    delays_hours: list[float] = field(default_factory=list)
    # per channel, over the experiences of the days from CALIBRATION_FROM_DAY whose finals are all in
    calibration: dict[str, Calibration] = field(default_factory=dict)
    calibration_days: tuple[int, int] = (0, 0)
    truth: dict[str, Truth] = field(default_factory=dict)  # conversion id → what caused it (the market's record)
    complete: bool = True  # every day's data arrived in time (else the run is not reproducible)
    seconds: float = 0.0

    @property
    def final(self) -> DayRecord:
        return self.days[-1]


class _Player:
    def __init__(self, name: str, index: int, spec: MarketSpec, plan: DemoPlan, producer: TouchpointProducer,
                 buffer: ReplayBuffer) -> None:
        self.name = name
        self.env = AdMarketEnv(Market(spec, stream=index), name, START_MS, plan.impressions_per_hour)
        self.wrapped = DelayedRewardWrapper(self.env, producer, buffer, campaign_id=name)
        self.agent = ThompsonAgent(len(SEGMENTS), len(CHANNELS), seed=plan.seed * 100 + index)
        self.touch_times: list[int] = []
        self.value_mark = 0.0
        self.impression_mark = 0

    def play_hour(self, feed: ConversionProducer, events: list[Event]) -> int:
        """One episode (a simulated hour); returns how many events it published."""
        obs, _ = self.wrapped.reset()
        published = 0
        done = False
        while not done:
            segment = int(np.argmax(obs))
            action = self.agent.act(segment)
            next_obs, reward, _term, truncated, info = self.wrapped.step(action)
            t = int(info["timestamp_ms"])
            self.touch_times.append(t)
            events.append(Touchpoint(info["touchpoint_id"], info["episode_id"], info["user_id"], self.name,
                                     info["channel"], t, float(reward), "banner", obs.tolist(), action))
            published += 1
            for conv in self.env.due_conversions(t):
                feed.send(conv)
                events.append(conv)
                published += 1
            obs, done = next_obs, truncated
        return published

    def realized_since_mark(self) -> float:
        n = self.env.impressions - self.impression_mark
        value = self.env.value_caused - self.value_mark
        self.value_mark, self.impression_mark = self.env.value_caused, self.env.impressions
        return 1000.0 * value / n if n else 0.0


def run_market_demo(settings: Settings, plan: DemoPlan, worker: WorkerProcess, out: Path,
                    say: Callable[[str], None]) -> DemoResult:
    spec = plan.spec()
    result = DemoResult()
    started = time.monotonic()
    producer = TouchpointProducer(settings)  # the agents' side
    feed = ConversionProducer(settings)  # the market's conversion feed
    buffer = ReplayBuffer(settings, group=f"demo-{settings.app_id}",
                          capacity=plan.days * 24 * plan.impressions_per_hour * len(AGENTS) + 1000).start()
    players = [_Player(name, i, spec, plan, producer, buffer) for i, name in enumerate(AGENTS)]
    oracle = spec.policy_value(spec.oracle_policy())
    published = 0
    last_events, last_clock = 0, time.monotonic()
    try:
        for day in range(plan.days):
            for _hour in range(24):
                for player in players:
                    published += player.play_hour(feed, result.events)
            day_end = START_MS + (day + 1) * DAY_MS
            cutoff = day_end - (plan.window_days + 1) * DAY_MS  # finals up to here are due by now
            producer.flush()
            feed.flush()
            stats = _wait_for_worker(worker, published, plan.settle_timeout)
            columns, missing = _wait_for_buffer(buffer, players, cutoff, stats, plan.settle_timeout)
            columns = _canonical(columns)
            if missing:
                result.complete = False
                # the worker's state now, not as it was when the wait began (its lag then misled once)
                say(f"day {day + 1}: not complete after {plan.settle_timeout:.0f} s: {missing}; worker "
                    f"{worker.stats() or 'no stats'}; worker log: {worker.log}")
            columns = _provisional_rewards(buffer, columns, day_end, plan.window_days)
            learned = _refit(players, buffer, columns, cutoff)
            now = time.monotonic()
            events_in = int(stats.get("events_in", 0))
            rate = (events_in - last_events) / max(now - last_clock, 1e-9)
            last_events, last_clock = events_in, now
            lag = stats.get("watermark_lag_seconds")
            record = DayRecord(day + 1, {p.name: spec.policy_value(p.agent.greedy_policy()) for p in players},
                               {p.name: p.realized_since_mark() for p in players}, oracle, rate,
                               int(stats.get("conversions_attributed", 0)), lag / 3600 if lag is not None else None,
                               learned)
            record.predictions = _todays_predictions(columns, day_end)
            result.days.append(record)
            say(_progress(record, plan.days))
        result.buffer_stats = buffer.statistics()
        cols = buffer.columns()
        result.calibration, result.calibration_days = _calibration(result.days, cols, plan.window_days, plan.seed)
        for p in players:
            result.truth.update(p.env.truth)
        delays = cols["delay_seconds"]
        result.delays_hours = (delays[~np.isnan(delays)] / 3600.0).tolist()
    finally:
        try:
            producer.close()
            feed.close()
        finally:
            buffer.stop()
    with open(out / "events.jsonl", "wb") as fh:
        for ev in result.events:
            fh.write(orjson.dumps(event_to_json(ev)) + b"\n")
    result.seconds = time.monotonic() - started
    return result


def _wait_for_worker(worker: WorkerProcess, published: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = worker.stats() or stats
        if int(stats.get("events_in", 0)) >= published:
            return stats
        if not worker.alive():
            raise RuntimeError(f"the worker exited:\n{worker.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"the worker processed {stats.get('events_in', 0)} of {published} events in {timeout:.0f} s"
                       f"\n{worker.tail()}")


def _wait_for_buffer(buffer: ReplayBuffer, players: list[_Player], cutoff: int, worker_stats: dict[str, Any],
                     timeout: float) -> tuple[dict[str, Any], str]:
    """Wait until the buffer holds every touchpoint published so far, the final reward of every one older
    than ``cutoff``, and the split of every conversion the worker has processed (attributed or not): what
    each agent will learn from is then the same on every run. Returns the columns and, if the timeout came
    first, what was still missing."""
    need = {p.name: (len(p.touch_times), int(np.searchsorted(p.touch_times, cutoff, side="right")))
            for p in players}
    attributed = int(worker_stats.get("conversions_attributed", 0))
    unattributed = int(worker_stats.get("conversions_unattributed", 0))
    deadline = time.monotonic() + timeout
    while True:
        stats = buffer.statistics()  # the cheap conditions first: a full copy of the columns only when they hold
        ok = (stats["conversions_attributed"] >= attributed and stats["conversions_unattributed"] >= unattributed
              and buffer.caught_up())
        late = time.monotonic() > deadline
        if ok or late:
            cols = buffer.columns()
            short = []
            for name, (touches, finals) in need.items():
                mine = cols["campaign_ids"] == name
                held = int(mine.sum())
                final = int((mine & cols["final"] & (cols["touch_time_ms"] <= cutoff)).sum())
                if held < touches or final < finals:
                    short.append(f"{name}: {held}/{touches} touchpoints, {final}/{finals} finals")
            ok &= not short
            if ok:
                return cols, ""
            if late:
                return cols, "; ".join([
                    f"buffer conversions {stats['conversions_attributed']}/{attributed} attributed, "
                    f"{stats['conversions_unattributed']}/{unattributed} unattributed, "
                    f"caught up {buffer.caught_up()}", *short])
        time.sleep(0.1)


def _canonical(cols: dict[str, Any]) -> dict[str, Any]:
    """The buffer's rows in (touch time, user, touchpoint id) order: its own order is the order the consumer
    read the partitions in, which varies by run, and float sums (and so the agents' fits) depend on order."""
    order = np.lexsort((cols["touchpoint_ids"].astype(str), cols["user_ids"].astype(str), cols["touch_time_ms"]))
    return {k: v[order] if isinstance(v, np.ndarray) and len(v) == len(order) else v for k, v in cols.items()}


def segment_of(state: Any) -> str:
    """The market's observation is the user's segment, one-hot: the delay model's third key."""
    return SEGMENTS[int(np.argmax(state))]


def _provisional_rewards(buffer: ReplayBuffer, cols: dict[str, Any], day_end: int, window_days: int
                         ) -> dict[str, Any]:
    """Refit the delay model on what the buffer holds (open rows are censored at the day's end, not counted as
    lost) and read the columns again with the provisional rewards it gives."""
    if not len(cols["touch_time_ms"]):
        return cols
    segments = np.argmax(cols["states"], axis=1)
    keys = [(str(ch), str(camp), SEGMENTS[int(s)])
            for ch, camp, s in zip(cols["channels"], cols["campaign_ids"], segments, strict=True)]
    total = np.where(cols["final"], cols["final_minor"], cols["attributed_minor"])
    model = fit_delay_model(keys, cols["touch_time_ms"], cols["first_credit_ms"], total, day_end,
                            window_days * DAY_MS, feature="segment", base_currency="USD")
    buffer.set_delay_model(model, segment_of)
    fresh_cols = _canonical(buffer.columns())
    # what the model expects of each row while it is fresh (elapsed 0): the calibration check's prediction
    names = sorted(set(keys))
    code = {k: i for i, k in enumerate(names)}
    survival, amounts = model.table(names)
    codes = np.fromiter((code[k] for k in keys), dtype=np.int64, count=len(keys))
    n = len(keys)
    fresh = model.expected_many(survival, amounts, codes, np.zeros(n)) * 10.0 ** -MINOR_UNITS["USD"]
    fresh_cols["fresh_expected"] = np.concatenate([fresh, np.zeros(len(fresh_cols["touch_time_ms"]) - n)])
    return fresh_cols


def _todays_predictions(cols: dict[str, Any], day_end: int) -> list[tuple[str, str, float]]:
    """The day's experiences (every agent's: the delay model is the buffer's) with the reward the model expected
    of them when fresh (elapsed 0, the day's own model): the calibration check compares it with their finals."""
    fresh = cols["touch_time_ms"] > day_end - DAY_MS
    rows = np.flatnonzero(fresh)
    return [(str(cols["touchpoint_ids"][i]), str(cols["channels"][i]), float(cols["fresh_expected"][i]))
            for i in rows] if "fresh_expected" in cols else []


CALIBRATION_FROM_DAY = 4  # provisional rewards are judged from this day on (the model has data by then)
BOOTSTRAP = 400  # resamples for a calibration interval


class Calibration(NamedTuple):
    """Per channel: mean provisional reward when fresh, mean realized final reward, experiences, the realized
    mean's standard error, and a 95 % bootstrap interval of the relative error (expected / realized − 1)."""

    expected: float
    realized: float
    n: int
    se: float
    low: float
    high: float

    @property
    def error(self) -> float:
        return self.expected / self.realized - 1 if self.realized else float("inf")


def _calibration(days: list[DayRecord], cols: dict[str, Any], window_days: int, seed: int
                 ) -> tuple[dict[str, Calibration], tuple[int, int]]:
    """Mean provisional reward (the day's model, when the experience was fresh) against the realized final
    reward, per channel, over the days from ``CALIBRATION_FROM_DAY`` whose experiences are all final by the end
    of the run. The interval resamples experiences (the day's prediction with its final) with replacement."""
    last = len(days) - window_days - 1  # days up to this one have closed every window by the end
    chosen = [d for d in days if CALIBRATION_FROM_DAY <= d.day <= last]
    scale = 10.0 ** -MINOR_UNITS["USD"]
    final = {str(t): float(m) * scale
             for t, f, m in zip(cols["touchpoint_ids"], cols["final"], cols["final_minor"], strict=True) if f}
    pairs: dict[str, list[tuple[float, float]]] = {}
    for d in chosen:
        for tid, channel, predicted in d.predictions:
            if tid in final:
                pairs.setdefault(channel, []).append((predicted, final[tid]))
    span = (chosen[0].day, chosen[-1].day) if chosen else (0, 0)
    rng = np.random.default_rng(seed)
    out: dict[str, Calibration] = {}
    for c, rows in sorted(pairs.items()):
        a = np.asarray(rows)
        n = len(a)
        mean = float(a[:, 1].mean())
        se = float(a[:, 1].std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        pick = rng.integers(n, size=(BOOTSTRAP, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = a[pick, 0].mean(axis=1) / a[pick, 1].mean(axis=1) - 1
        low, high = np.quantile(ratios[np.isfinite(ratios)], [0.025, 0.975]) if np.isfinite(ratios).any() \
            else (float("inf"), float("inf"))
        out[c] = Calibration(float(a[:, 0].mean()), mean, n, se, float(low), float(high))
    return out, span


def _refit(players: list[_Player], buffer: ReplayBuffer, cols: dict[str, Any], cutoff: int) -> dict[str, int]:
    """Click agent: immediate rewards of all its experiences. Attribution agent: final attributed rewards.
    Provisional agent: every experience's ``reward`` (expected, then attributed, then final)."""
    to_action = np.array([CHANNELS.index(name) for name in buffer.channel_names], dtype=np.int64)
    learned: dict[str, int] = {}
    for p in players:
        mask = cols["campaign_ids"] == p.name
        if p.name == "attribution-agent":
            mask &= cols["final"] & (cols["touch_time_ms"] <= cutoff)
            rewards = cols["attributed_reward"]
        elif p.name == "provisional-agent":
            rewards = cols["reward"]
        else:
            rewards = cols["original_reward"]
        order = np.flatnonzero(mask)
        learned[p.name] = len(order)
        if len(order):
            segments = np.argmax(cols["states"][order], axis=1).astype(np.int64)
            p.agent.fit(segments, to_action[cols["channel"][order]], rewards[order].astype(np.float64))
    return learned


def _progress(r: DayRecord, days: int) -> str:
    lag = f"{r.watermark_lag_hours:5.1f} h" if r.watermark_lag_hours is not None else "    - "
    pv = r.policy_value
    return (f"day {r.day:>3}/{days} | worker {r.worker_events_per_s:>6,.0f} events/s | "
            f"{r.conversions_attributed:>6,} conversions attributed | watermark lag {lag} | "
            f"value per 1,000 impressions: click {pv['click-agent']:>6,.0f}  "
            f"attribution {pv['attribution-agent']:>6,.0f}  provisional {pv['provisional-agent']:>6,.0f}  "
            f"oracle {r.oracle_value:>6,.0f}")
