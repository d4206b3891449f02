"""``rewardstream demo``: agents learn from delayed rewards in a simulated ad market, through the pipeline.

Starts the local broker (unless one is given) and a worker, creates the run's topics, runs the market on a
simulated clock (days of journeys in minutes), then prints a summary and writes a PNG report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli.common import BrokerUnavailable, load_engine_config, run_settings
from pipeline.cli.demo_ledger import write_ledger_and_answer
from pipeline.demo.ad_market import AGENTS, DemoPlan, DemoResult, run_market_demo, simulated_past_seconds
from pipeline.kafka import admin_client
from pipeline.market import DEFAULT_MARKET, MARKETS, MarketSpec
from pipeline.model_comparison import evaluate_models
from pipeline.shell.worker_process import WorkerProcess
from pipeline.synthetic import write_engine_config

CALIBRATION_MIN_EXPERIENCES = 200  # a channel the agent rarely plays has too few finals to judge a mean by


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="agents learning from delayed rewards in a simulated ad market (the main job)")
    p.add_argument("--days", type=int, default=40, help="simulated days (default 40)")
    p.add_argument("--impressions-per-hour", type=int, default=60, help="per agent (default 60)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--market", choices=sorted(MARKETS), default=DEFAULT_MARKET,
                   help=f"market preset (default {DEFAULT_MARKET}: organic conversions, harvesting, carry-over)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting the local broker")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics at the end")
    p.set_defaults(handler=run)


def _say(msg: str) -> None:
    print(msg, flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        settings = run_settings("demo", args.bootstrap, _say)
    except BrokerUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    plan = DemoPlan(days=args.days, impressions_per_hour=args.impressions_per_hour, seed=args.seed,
                    market=args.market)
    config_path = write_engine_config(out / "rewardstream.toml", window_days=plan.window_days)
    spec = plan.spec()
    _say(f"market: {spec.name}, {len(AGENTS)} agents x {plan.impressions_per_hour * 24:,} impressions per simulated "
         f"day for {plan.days} days, seed {plan.seed}; conversions arrive hours to 10 days after the ad that caused "
         "them" + ("; some happen with no ad at all" if spec.causal else ""))
    worker_settings = settings.with_overrides(max_event_delay_seconds=simulated_past_seconds(plan.days))
    worker = WorkerProcess(worker_settings, config_path, out, "worker", idle_timeout_seconds=2).start()
    try:
        result = run_market_demo(settings, plan, worker, out, _say)
        write_ledger_and_answer(settings, _say)  # the run's rewards into the local PostgreSQL, one SQL answer
    finally:
        worker.stop()
        if not args.keep_topics:
            admin_client(settings).delete_topics([settings.topic_touchpoints, settings.topic_conversions,
                                                  settings.topic_rewards, settings.topic_dead_letters])
    return _summarize(result, plan, spec, config_path, out, worker, started)


def _summarize(result: DemoResult, plan: DemoPlan, spec: MarketSpec, config_path: Path, out: Path,
               worker: WorkerProcess, started: float) -> int:
    stats = result.buffer_stats
    if not result.days or stats.get("rewards_applied", 0) == 0:
        _say(f"demo: the pipeline delivered no attributed rewards; worker log: {worker.log}")
        return 1
    final = result.final
    oracle = final.oracle_value
    value = {a: final.policy_value[a] for a in AGENTS}
    t = time.monotonic()
    evaluation = evaluate_models(out / "events.jsonl", result.truth, spec, load_engine_config(config_path))
    per_model = {"true incremental": evaluation.truth_per_channel,
                 **{evaluation.label(s.model): s.per_channel for s in evaluation.scores}}
    days = [d.day for d in result.days]
    from pipeline.report.charts import demo_report  # matplotlib: only when drawing

    png = demo_report(
        out / "report.png", days,
        {a: [d.policy_value[a] for d in result.days] for a in AGENTS},
        {a: [d.realized_value[a] for d in result.days] for a in AGENTS}, oracle, spec.cpm,
        {a: [d.learned_from[a] for d in result.days] for a in AGENTS}, per_model, result.delays_hours,
        plan.window_days, result.calibration, result.calibration_days, evaluation)
    _say("")
    heading = f"policy after {final.day} days"
    _say(f"{heading:<34}{'value per 1,000 impressions':>28}{'value per $ spend':>20}{'first day >= 90% oracle':>26}"
         f"{'>= 90% from day on':>21}")
    reached = {a: next((d.day for d in result.days if d.policy_value[a] >= 0.9 * oracle), None) for a in AGENTS}
    # the first day after which the policy never drops below 90% again (a first touch can be luck)
    stays = {a: next((d.day for i, d in enumerate(result.days)
                      if all(e.policy_value[a] >= 0.9 * oracle for e in result.days[i:])), None) for a in AGENTS}
    for name, v, agent in (("oracle (knows the market)", oracle, None), ("provisional agent", value[AGENTS[2]],
                           AGENTS[2]), ("attribution agent", value[AGENTS[1]], AGENTS[1]),
                           ("click agent", value[AGENTS[0]], AGENTS[0])):
        first = "" if agent is None else (f"day {reached[agent]}" if reached[agent] else "never")
        kept = "" if agent is None else (f"day {stays[agent]}" if stays[agent] else "never")
        _say(f"{name:<34}{v:>28,.0f}{v / spec.cpm:>20,.1f}{first:>26}{kept:>21}")
    last = result.days[-7:]
    realized = {a: sum(d.realized_value[a] for d in last) / len(last) for a in AGENTS}
    _say(f"value the agents' impressions actually caused over the last {len(last)} days (exploration included), "
         "per 1,000 impressions: " + ", ".join(f"{a.split('-')[0]} {realized[a]:,.0f}" for a in AGENTS))
    for a in AGENTS[1:]:
        _say(f"{a} vs oracle: {value[a] / oracle:.1%} "
             f"({'within' if value[a] >= 0.9 * oracle else 'NOT within'} 10%); "
             f"vs click agent: {value[a] / value[AGENTS[0]] - 1:+.0%}")
    if result.calibration:
        lo, hi = result.calibration_days
        cells = ", ".join(f"{c} {v.expected:.2f}/{v.realized:.2f} ({v.error:+.0%}, 95% {v.low:+.0%}..{v.high:+.0%})"
                          f" n={v.n:,}" for c, v in result.calibration.items())
        judged = {c: v for c, v in result.calibration.items() if v.n >= CALIBRATION_MIN_EXPERIENCES}
        worst = max(judged.items(), key=lambda cv: abs(cv[1].error), default=None)
        verdict = "no channel has enough experiences to judge" if worst is None else (
            f"worst channel {worst[0]} {worst[1].error:+.1%} "
            f"({'within' if abs(worst[1].error) <= 0.10 else 'NOT within'} ±10%)")
        _say(f"provisional reward calibration, days {lo}-{hi}, mean expected when fresh / realized final per "
             f"experience (USD), relative error with its bootstrap interval: {cells}; over channels with at least "
             f"{CALIBRATION_MIN_EXPERIENCES} experiences, {verdict}")
    _say("attribution models scored against the market's causal truth (value per channel in USD; the agents' "
         "own events):")
    for line in evaluation.table():
        _say("  " + line)
    _say(evaluation.headline())
    _say(f"pipeline: {len(result.events):,} events; replay buffer {stats['size']:,} experiences, "
         f"{stats['final']:,} final, {stats['conversions_attributed']:,} conversions attributed, "
         f"{stats['total_attributed']:,.2f} {stats['base_currency']} attributed; "
         f"conversion rate {stats['conversion_rate']:.2%}, average time to conversion "
         f"{stats['avg_time_to_conversion_hours']:.1f} h; every day's data complete: "
         f"{'yes' if result.complete else 'NO (results may vary between runs)'}")
    _say(f"models scored over the run's events in {time.monotonic() - t:.0f}s")
    _say(f"report: {png}\nevents: {out / 'events.jsonl'} (rewardstream backfill / report work on it)\n"
         f"worker log: {worker.log}")
    _say(f"demo finished in {time.monotonic() - started:.0f}s")
    return 0
