"""The Kafka runtime's HTTP views, on a thread of their own: ``/health/``, ``/stats/``, ``/metrics/`` and
``/journeys/{user_id}/`` with the same content and the same bearer token as the Faust runtime's.

The processing loop publishes a stats snapshot (``publish``); the views never call into the engines, which
belong to the loop's thread. A journey is read from the committed store of the partition that holds the user;
a request for a user whose partition another worker owns is passed on to that worker (``routing``), with its
Authorization header, and its answer returned; 421 where no owner is known (a rebalance under way).
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import orjson

from pipeline.engine import EngineConfig, Journey
from pipeline.http_auth import bearer_ok
from pipeline.shell.views import journey_json, prometheus_text

log = logging.getLogger("rewardstream.worker")

JourneyLookup = Callable[[str], tuple[bool, Journey | None, int]]  # user → (owned here, journey, partition)
OwnerLookup = Callable[[int], str | None]  # partition → the owning worker's address
ROUTED_HEADER = "X-Rewardstream-Routed"  # a request passed on once is never passed on again


class WorkerViews:
    def __init__(self, bind: str, port: int, token: str, config: EngineConfig, lookup: JourneyLookup,
                 owner: OwnerLookup) -> None:
        self._snapshot: dict[str, Any] = {}
        views = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/") + "/"
                if path == "/health/":
                    return self._json(200, {"ok": True})
                if token and not bearer_ok(self.headers.get("Authorization"), token):
                    return self._json(401, {"error": "missing or wrong bearer token"})
                if path == "/stats/":
                    return self._json(200, views._snapshot)
                if path == "/metrics/":
                    body = prometheus_text(views._snapshot).encode() if views._snapshot else b""
                    return self._send(200, body, "text/plain; version=0.0.4")
                if path.startswith("/journeys/") and path.count("/") == 3:
                    user = unquote(path[len("/journeys/"):-1])
                    owned, journey, partition = lookup(user)
                    if not owned:
                        address = None if self.headers.get(ROUTED_HEADER) else owner(partition)
                        if address is None:
                            return self._json(421, {"error": f"partition {partition} is not owned by this worker",
                                                    "partition": partition})
                        return self._pass_on(address + self.path)
                    return self._json(200 if journey is not None else 404, journey_json(user, journey, config))
                return self._json(404, {"error": "not found"})

            def _pass_on(self, url: str) -> None:
                headers = {ROUTED_HEADER: "1"}
                if self.headers.get("Authorization"):
                    headers["Authorization"] = self.headers["Authorization"]
                try:
                    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
                        status, body = resp.status, resp.read()
                except urllib.error.HTTPError as err:
                    status, body = err.code, err.read()
                except OSError as exc:
                    return self._json(502, {"error": f"the owning worker did not answer: {exc}"})
                self._send(status, body, "application/json")

            def _json(self, status: int, data: Any) -> None:
                self._send(status, orjson.dumps(data), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((bind, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def publish(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot  # one reference swap: the views read whole snapshots only

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serving loop that was never started otherwise
            self._server.shutdown()
        self._server.server_close()
