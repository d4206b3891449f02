"""The worker's HTTP views: ``/stats/`` (JSON), ``/metrics/`` (Prometheus text), ``/journeys/{user_id}/``, all
behind the web token when one is set, and ``/health/`` for probes (open, says only whether the worker is well)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust

from pipeline.engine import EngineConfig, Journey
from pipeline.http_auth import bearer_ok
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
    return "\n".join(lines) + "\n"


def register(app: faust.App, table: Any, stats: Callable[[], dict[str, Any]],
             journey: Callable[[str], Journey | None], config: EngineConfig, token: str = "") -> None:
    """The views on a Faust app; ``/journeys/`` is routed to the worker that owns the user's partition (the
    request's Authorization header goes with it). With a ``token`` every view requires it."""

    def refused(web: Any, request: Any) -> Any:
        if token and not bearer_ok(request.headers.get("Authorization"), token):
            return web.json({"error": "missing or wrong bearer token"}, status=401)
        return None

    @app.page("/health/")
    async def health_view(web: Any, request: Any) -> Any:
        """Open to probes: whether the worker is up, nothing about users. A worker that cannot deliver exits
        (see ``app.fatal``), so answering at all is the signal."""
        return web.json({"ok": True})

    @app.page("/stats/")
    async def stats_view(web: Any, request: Any) -> Any:
        return refused(web, request) or web.json(stats())

    @app.page("/metrics/")
    async def metrics_view(web: Any, request: Any) -> Any:
        return refused(web, request) or web.text(prometheus_text(stats()), content_type="text/plain; version=0.0.4")

    @app.page("/journeys/{user_id}/")
    @app.table_route(table=table, match_info="user_id")
    async def journey_view(web: Any, request: Any, user_id: str) -> Any:
        denied = refused(web, request)
        if denied is not None:
            return denied
        found = journey(user_id)
        return web.json(journey_json(user_id, found, config), status=200 if found is not None else 404)
