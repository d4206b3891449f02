"""The outage filter: one line down, one line back with the duration, repeats held back."""

from __future__ import annotations

import logging

import pytest

from pipeline.shell.outages import KAFKA, Dependencies, QuietLogs
from pipeline.shell.views import prometheus_text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_an_outage_is_one_line_down_and_one_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    deps = Dependencies(monotonic=clock)
    quiet = QuietLogs(deps, window_s=60, monotonic=clock)
    written = []
    with caplog.at_level(logging.INFO, logger="rewardstream.dependencies"):
        _outage(clock, quiet, written)
        deps.up(KAFKA, asked_at=999.0)  # an answer to a request from before the outage: still down
        clock.now += 1
        deps.up(KAFKA, asked_at=clock.now - 0.5)
    assert written == []
    lines = [r.getMessage() for r in caplog.records if r.name == "rewardstream.dependencies"]
    assert len(lines) == 2 and lines[0].startswith("kafka unreachable: aiokafka.conn: Unable connect")
    assert "kafka back after 25.9 s (1500 log lines held back" in lines[1]
    clock.now += 2  # a connection from before the outage fails once more: held back, no new outage
    assert not quiet.filter(_record("rewardstream.kafka.client", logging.ERROR, "Connect failed: Connection refused"))
    m = deps.metrics()[KAFKA]
    assert m["up"] == 1.0 and m["outages"] == 1 and m["outage_seconds"] == pytest.approx(25.95)
    assert len([r for r in caplog.records if r.name == "rewardstream.dependencies"]) == 2
    text = prometheus_text_for(deps)
    assert 'rewardstream_dependency_up{dependency="kafka"} 1' in text
    assert 'rewardstream_dependency_outages_total{dependency="kafka"} 1' in text


def _outage(clock: Clock, quiet: QuietLogs, written: list[str]) -> None:
    for i in range(500):  # aiokafka's and librdkafka's per-attempt errors
        clock.now += 0.05
        for rec in (_record("aiokafka.conn", logging.ERROR, "Unable connect to node with id %d: [Errno 111] "
                                                            "Connect call failed", i % 3),
                    _record("rewardstream.kafka.client", logging.ERROR, "FAIL [rdkafka#consumer-1] Connection refused"),
                    _record("faust.transport.consumer", logging.WARNING, "Commit failed: %s", "NodeNotReadyError")):
            if quiet.filter(rec):
                written.append(rec.getMessage())


def test_a_repeated_warning_is_written_once_a_window_and_says_how_many_were_held() -> None:
    clock = Clock()
    quiet = QuietLogs(Dependencies(monotonic=clock), window_s=60, monotonic=clock)
    passed = []
    for _ in range(100):
        clock.now += 1
        rec = _record("rewardstream.worker", logging.WARNING, "committed offset of %s unavailable", "x")
        if quiet.filter(rec):
            passed.append(rec.getMessage())
    assert len(passed) == 2 and "59 more like it held back" in passed[1]
    assert quiet.filter(_record("rewardstream.worker", logging.INFO, "partition taken up"))
    assert quiet.filter(_record("rewardstream.worker", logging.CRITICAL, "committed offset of %s unavailable", "x"))


def prometheus_text_for(deps: Dependencies) -> str:
    stats = {name: 0 for name in ("events_in", "touchpoints", "conversions", "refunds", "conversions_attributed",
                                  "conversions_unattributed", "corrections", "finals", "duplicates",
                                  "dropped_touchpoints", "rejected", "dead_letters", "rewards_out",
                                  "rewards_sent_again", "hole_records", "repeats_skipped", "pending_touchpoints")}
    return prometheus_text({**stats, "base_currency": "EUR", "total_attributed": 0.0, "watermark_lag_seconds": None,
                            "per_model": {}, "dependencies": deps.metrics(), "log_lines_held_back": 0,
                            "tick": {"count": 1, "total_seconds": 0.01, "last_seconds": 0.01, "max_seconds": 0.01,
                                     "max_stall_seconds": 0.01}})
