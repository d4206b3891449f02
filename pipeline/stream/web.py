"""The Faust worker's HTTP views: ``/stats/`` (JSON), ``/metrics/`` (Prometheus text), ``/journeys/{user_id}/``,
all behind the web token when one is set, and ``/health/`` for probes (open, says only whether the worker is
well). What each view says is ``pipeline.shell.views``', shared with the Kafka runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust

from pipeline.engine import EngineConfig, Journey
from pipeline.http_auth import bearer_ok
from pipeline.shell.views import journey_json, prometheus_text


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
