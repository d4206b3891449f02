"""What the worker's HTTP views say, whichever runtime serves them: a journey as JSON, the stats as Prometheus
text. The Faust runtime serves them through Faust's web server (``pipeline.stream.web``), the Kafka runtime
through its own (``pipeline.runtime.http``)."""

from __future__ import annotations

from typing import Any

from pipeline.engine import EngineConfig, Journey
from pipeline.money.exact import from_minor


def journey_json(user_id: str, journey: Journey | None, config: EngineConfig) -> dict[str, Any]:
    if journey is None:
        return {"user_id": user_id, "found": False, "touchpoints": [], "conversions": []}
    base = config.rates.base
    return {
        "user_id": user_id,
        "found": True,
        "touchpoints": [
            {"touchpoint_id": t.touchpoint_id, "episode_id": t.episode_id, "campaign_id": t.campaign_id,
             "channel": t.channel, "time_ms": t.time_ms, "immediate_reward": t.immediate_reward,
             "earned": float(from_minor(e, base))}
            for t, e in zip(journey.touches, journey.earned, strict=True)
        ],
        "conversions": [
            {"conversion_id": s.conversion_id, "event": s.event, "time_ms": s.time_ms, "currency": s.currency,
             "value": float(from_minor(s.value_minor, s.currency)), "model": s.used_model, "revision": s.revision,
             "refund_of": s.refund_of,
             "shares": {t.touchpoint_id: float(from_minor(a, base))
                        for t, a in zip(s.touches, s.shares, strict=True)}}
            for s in journey.splits
        ],
    }


_COUNTERS = ("events_in", "touchpoints", "conversions", "refunds", "conversions_attributed",
             "conversions_unattributed", "corrections", "finals", "duplicates", "dropped_touchpoints", "rejected",
             "dead_letters", "rewards_out", "rewards_sent_again", "hole_records",
             "repeats_skipped")


def prometheus_text(stats: dict[str, Any]) -> str:
    lines = []
    for name in _COUNTERS:
        lines += [f"# TYPE rewardstream_{name}_total counter", f"rewardstream_{name}_total {stats[name]}"]
    lines += ["# TYPE rewardstream_pending_touchpoints gauge",
              f"rewardstream_pending_touchpoints {stats['pending_touchpoints']}",
              "# TYPE rewardstream_attributed_value_total counter",
              f'rewardstream_attributed_value_total{{currency="{stats["base_currency"]}"}} {stats["total_attributed"]}']
    if stats["watermark_lag_seconds"] is not None:
        lines += ["# TYPE rewardstream_watermark_lag_seconds gauge",
                  f"rewardstream_watermark_lag_seconds {stats['watermark_lag_seconds']}"]
    lines.append("# TYPE rewardstream_conversions_by_model_total counter")
    for model, n in sorted(stats["per_model"].items()):
        lines.append(f'rewardstream_conversions_by_model_total{{model="{model}"}} {n}')
    lines += _dependency_lines(stats.get("dependencies", {}), stats.get("log_lines_held_back", 0))
    tick = stats.get("tick")
    if tick:
        lines += ["# TYPE rewardstream_tick_seconds summary",
                  f"rewardstream_tick_seconds_count {tick['count']}",
                  f"rewardstream_tick_seconds_sum {tick['total_seconds']}",
                  "# TYPE rewardstream_tick_last_seconds gauge",
                  f"rewardstream_tick_last_seconds {tick['last_seconds']}",
                  "# TYPE rewardstream_tick_max_seconds gauge",
                  f"rewardstream_tick_max_seconds {tick['max_seconds']}",
                  "# TYPE rewardstream_tick_max_stall_seconds gauge",
                  f"rewardstream_tick_max_stall_seconds {tick['max_stall_seconds']}"]
    return "\n".join(lines) + "\n"


def _dependency_lines(deps: dict[str, dict[str, float]], held_back: int) -> list[str]:
    """Whether each dependency answers, how often and how long it did not (``pipeline.shell.outages``)."""
    lines = ["# TYPE rewardstream_dependency_up gauge"]
    lines += [f'rewardstream_dependency_up{{dependency="{name}"}} {int(d["up"])}' for name, d in deps.items()]
    lines.append("# TYPE rewardstream_dependency_outages_total counter")
    lines += [f'rewardstream_dependency_outages_total{{dependency="{name}"}} {int(d["outages"])}'
              for name, d in deps.items()]
    lines.append("# TYPE rewardstream_dependency_outage_seconds_total counter")
    lines += [f'rewardstream_dependency_outage_seconds_total{{dependency="{name}"}} {d["outage_seconds"]:.3f}'
              for name, d in deps.items()]
    return [*lines, "# TYPE rewardstream_log_lines_held_back_total counter",
            f"rewardstream_log_lines_held_back_total {held_back}"]
