"""``backfill --from-kafka`` against the real broker: the input topics' history re-attributed by the worker's
partition step, both engines identical, equal to the file backfill of the same log, into a file or a topic,
without joining or committing a consumer group."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.backfill.from_kafka import run_kafka_backfill
from pipeline.compare import differences, facts
from pipeline.kafka import admin_client, ensure_topics
from pipeline.native import available
from pipeline.settings import Settings
from tests.integration.stream_harness import RewardReader, file_history, produce_lines, wait_for


def per_user(data: bytes) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for line in data.splitlines():
        out.setdefault(orjson.loads(line)["user_id"], []).append(line)
    return out


@pytest.mark.timeout(300)
def test_history_from_kafka_equals_the_file_backfill(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings
    lines, config, expected = file_history(settings, tmp_path, users=400, seed=5)
    sent = produce_lines(settings, lines)
    # a record no engine can read goes to the rejected file with its topic, partition and offset
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": settings.bootstrap_servers})
    p.produce(settings.topic_touchpoints, key=b"u-x", value=b"\x00not avro", partition=0)
    p.flush(10)

    outputs = {}
    for engine in (["native", "python"] if available() else ["python"]):
        out, rejected = tmp_path / f"{engine}.jsonl", tmp_path / f"{engine}.rejected.jsonl"
        summary = run_kafka_backfill(settings, config, output=out, rejected_path=rejected, engine=engine)
        assert summary.events_in == sent + 1 and summary.partitions == settings.partitions
        refused = [orjson.loads(x) for x in rejected.read_bytes().splitlines()]
        assert [(r["topic"], r["partition"]) for r in refused] == [(settings.topic_touchpoints, 0)]
        outputs[engine] = out.read_bytes()
        assert summary.rewards_out == len(outputs[engine].splitlines())
    if len(outputs) == 2:  # the same rewards, in the same order per user (users of a batch may interleave)
        assert per_user(outputs["native"]) == per_user(outputs["python"])
    got = facts(orjson.loads(x) for x in next(iter(outputs.values())).splitlines())
    assert got.finals and got.amounts
    assert differences(got, expected) == []

    # into a topic of its own; the live topics are refused
    with pytest.raises(ValueError, match="live pipeline"):
        run_kafka_backfill(settings, config, to_topic=settings.topic_rewards, rejected_path=tmp_path / "r.jsonl")
    target = settings.with_overrides(topic_rewards=settings.topic_rewards + ".rerun")
    ensure_topics(target, [target.topic_rewards])
    summary = run_kafka_backfill(settings, config, to_topic=target.topic_rewards,
                                 rejected_path=tmp_path / "r.jsonl", partitions=[0, 1])
    reader = RewardReader(target)
    try:
        wait_for(lambda: (reader.poll(1), len(reader.records) >= summary.rewards_out)[1], 60,
                 f"{summary.rewards_out} rewards on {target.topic_rewards}")
        assert len(reader.records) == summary.rewards_out > 0
    finally:
        reader.close()

    groups = admin_client(settings).list_consumer_groups().result(timeout=30)
    assert not [g.group_id for g in groups.valid if g.group_id.startswith("rewardstream-backfill-")]
