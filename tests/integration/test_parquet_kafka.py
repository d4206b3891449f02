"""Parquet from Kafka against the real broker: ``backfill --from-kafka --format parquet`` holds the facts of
the file backfill of the same log, and ``consume --format parquet`` the rewards topic's, reward for reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.backfill.from_kafka import run_kafka_backfill
from pipeline.cli.main import main
from pipeline.compare import differences, facts
from pipeline.events.jsonl import iso_ms
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from tests.integration.stream_harness import file_history, produce_lines


def _rows(path: Path) -> list[dict[str, Any]]:
    """A Parquet file's rewards in the JSON form (timestamps back to ISO text)."""
    return [{k: (iso_ms(int(v.timestamp() * 1000 + 0.5)) if k.endswith("_time") and v is not None else v)
             for k, v in row.items()} for row in pq.read_table(path).to_pylist()]


@pytest.mark.timeout(300)
def test_backfill_from_kafka_and_consume_write_parquet(kafka_settings: Settings, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = kafka_settings
    lines, config, expected = file_history(settings, tmp_path, users=300, seed=8)
    produce_lines(settings, lines)

    summary = run_kafka_backfill(settings, config, output=tmp_path / "history.parquet", fmt="parquet",
                                 rejected_path=tmp_path / "history.rejected.jsonl")
    history = _rows(tmp_path / "history.parquet")
    assert len(history) == summary.rewards_out > 0
    assert differences(facts(history), expected) == []

    # the same history through a rewards topic, read back by `consume --format parquet`
    target = settings.with_overrides(topic_rewards=settings.topic_rewards + ".rerun")
    ensure_topics(target, [target.topic_rewards])
    run_kafka_backfill(settings, config, to_topic=target.topic_rewards, rejected_path=tmp_path / "r.jsonl")
    monkeypatch.setenv("REWARDSTREAM_TOPIC_REWARDS", target.topic_rewards)
    assert main(["consume", "--output", str(tmp_path / "consumed.parquet"), "--format", "parquet",
                 "--until-idle", "5", "--bootstrap", settings.bootstrap_servers]) == 0
    consumed = _rows(tmp_path / "consumed.parquet")
    assert sorted(r["reward_id"] for r in consumed) == sorted(r["reward_id"] for r in history)
    assert differences(facts(consumed), expected) == []
