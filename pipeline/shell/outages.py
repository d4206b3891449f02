"""Quiet outages: one line when a dependency goes away, one when it is back (with how long it was away), a
metric, and repeated warnings rate-limited.

While a broker is down, its clients log every failed attempt (aiokafka once per connection try and request,
librdkafka once per broker thread and retry, Faust/mode on every failed commit and fetch): an operator reading
the log sees hundreds of lines saying the same thing. ``QuietLogs`` is a ``logging.Filter`` both runtimes and
the ingest server put on the root logger's handlers, so it sees every record whatever logger wrote it:

- a warning or error of a Kafka client saying the broker cannot be reached marks the dependency ``kafka`` down
  (one line, from ``rewardstream.dependencies``) and is not written itself;
- every other warning is written at most once per ``REPEAT_WINDOW_S`` per (logger, message template); the next
  one written says how many were held back;
- critical records (a worker's ``fatal``) and the dependency lines are always written.

The runtimes say when the broker answers again (``DEPENDENCIES.up``), from their periodic end-offset requests:
only an answer to a request sent after the outage began proves the broker is back, silence does not.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REPEAT_WINDOW_S = 60.0  # a repeated warning is written at most once in this long
# after a dependency is back, its clients' connections from before the outage still fail for a moment (one
# producer's bootstrap connection, retried on its own backoff): their errors then are held back, not a new outage
SETTLE_S = 10.0
KAFKA = "kafka"

# loggers of the Kafka clients (aiokafka, librdkafka through ``pipeline.kafka.clients``, Faust and its mode)
_CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "rewardstream.kafka")
# what their lines say when the broker cannot be reached
_UNREACHABLE = re.compile(
    r"connect|refused|unreachable|transport|disconnected|all brokers down|NodeNotReady|not available|"
    r"timed out|timeout|_TRANSPORT|_ALL_BROKERS_DOWN|Broker: Not coordinator|coordinator.*(dead|unknown)|"
    r"NoBrokersAvailable|KafkaConnectionError|RequestTimedOut|no route|Errno 111",
    re.IGNORECASE)

log = logging.getLogger("rewardstream.dependencies")


@dataclass
class Dependency:
    up: bool = True
    down_since: float = 0.0  # monotonic seconds
    up_since: float = -1e18
    outages: int = 0
    outage_seconds: float = 0.0  # finished outages only


class Dependencies:
    """Which dependencies answer, and how often and how long they did not."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()  # librdkafka logs from its own threads
        self.state: dict[str, Dependency] = {}
        self.suppressed_lines = 0

    def down(self, name: str, reason: str) -> None:
        with self._lock:
            dep = self.state.setdefault(name, Dependency())
            now = self._monotonic()
            if not dep.up or now - dep.up_since < SETTLE_S:
                return
            dep.up, dep.down_since = False, now
            dep.outages += 1
        log.error("%s unreachable: %s (its clients' repeated errors are held back until it is back)", name,
                  reason.strip()[:300])

    def up(self, name: str, asked_at: float) -> None:
        """``name`` answered a request sent at ``asked_at`` (monotonic): an answer to a request from before the
        outage proves nothing."""
        with self._lock:
            dep = self.state.setdefault(name, Dependency())
            if dep.up or asked_at < dep.down_since:
                return
            now = self._monotonic()
            away = now - dep.down_since
            dep.up, dep.up_since, dep.outage_seconds = True, now, dep.outage_seconds + away
            held = self.suppressed_lines
        log.warning("%s back after %.1f s (%d log lines held back so far)", name, away, held)

    def any_down(self) -> bool:
        return any(not dep.up for dep in self.state.values())

    def metrics(self) -> dict[str, dict[str, float]]:
        """Per dependency: up (1/0), outages, outage seconds (the current one included)."""
        now = self._monotonic()
        with self._lock:
            return {name: {"up": 1.0 if dep.up else 0.0, "outages": float(dep.outages),
                           "outage_seconds": dep.outage_seconds + (0.0 if dep.up else now - dep.down_since)}
                    for name, dep in sorted(self.state.items())}

    def known(self, name: str) -> None:
        """Show ``name`` in the metrics (as up) before its first outage."""
        with self._lock:
            self.state.setdefault(name, Dependency())


DEPENDENCIES = Dependencies()


class QuietLogs(logging.Filter):
    def __init__(self, dependencies: Dependencies = DEPENDENCIES, window_s: float = REPEAT_WINDOW_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.dependencies = dependencies
        self.window_s = window_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # (logger, template) → (written at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL or record.name == log.name:
            return True
        if record.name.startswith(_CLIENT_LOGGERS):
            message = record.getMessage()
            if _UNREACHABLE.search(message):
                self.dependencies.down(KAFKA, f"{record.name}: {message}")
                return self._hold()
            if self.dependencies.any_down():
                return self._hold()  # whatever else a client says while its broker is away
        key = (record.name, str(record.msg))
        now = self._monotonic()
        with self._lock:
            written_at, held = self._last.get(key, (-1e18, 0))
            if now - written_at < self.window_s:
                self._last[key] = (written_at, held + 1)
                self.dependencies.suppressed_lines += 1
                return False
            self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it held back in the last {now - written_at:.0f} s)"
        return True

    def _hold(self) -> bool:
        with self._lock:
            self.dependencies.suppressed_lines += 1
        return False


def install(dependencies: Dependencies = DEPENDENCIES) -> QuietLogs:
    """Put the filter on every handler of the root logger (once): records of every logger pass through them.
    Call it after logging is configured (a handler added later is not covered)."""
    dependencies.known(KAFKA)
    root = logging.getLogger()
    quiet = next((f for h in root.handlers for f in h.filters if isinstance(f, QuietLogs)), None)
    quiet = quiet or QuietLogs(dependencies)
    for handler in root.handlers:
        if quiet not in handler.filters:
            handler.addFilter(quiet)
    return quiet
