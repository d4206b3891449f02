"""A crash can leave journey changes in the changelog whose rewards never reached the rewards topic. A worker
that restores such a partition sends those rewards (the ones past the partition's delivered mark) and no
others. The changelog here is written as a worker killed at that moment would have left it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from pipeline.engine.partition import journey_codec
from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.kafka import consumer_config, ensure_topics, partition_for, producer_config
from pipeline.settings import Settings
from pipeline.shell.changelog import changelog_topic
from pipeline.stream.redelivery import mark_key, mark_value
from tests.integration.stream_harness import RewardReader, Worker, make_settings, wait_for, write_config


def _reward(user: str, touchpoint: str) -> bytes:
    reward = AttributedReward(RewardKind.ATTRIBUTION, touchpoint, "ep-1", user, "camp-1", "email", 1, 1234, "USD",
                              0.5, 1_700_000_000_000, f"c-{user}", "linear", "USD", 1234, 1234,
                              1_700_000_100_000, 0, 1)
    return AvroCodec("attributed_reward").encode(reward_to_record(reward))


def _end(settings: Settings, topic: str, partition: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex[:6]}"))
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
    finally:
        consumer.close()


@pytest.mark.timeout(300)
def test_restore_sends_the_rewards_past_the_delivered_mark_and_no_others(kafka_settings: Settings,
                                                                        tmp_path: Path) -> None:
    from confluent_kafka import Producer

    settings = make_settings(kafka_settings, f"rs-redeliver-{uuid.uuid4().hex[:8]}")
    changelog = changelog_topic(settings)
    ensure_topics(settings, [changelog], config={"cleanup.policy": "compact"})
    partition = partition_for(b"u-delivered", settings.partitions)
    late = next(f"u-late-{i}" for i in range(1000)
                if partition_for(f"u-late-{i}".encode(), settings.partitions) == partition)
    producer = Producer(producer_config(settings))
    for key, value in [(b"u-delivered", journey_codec.encode(None, [_reward("u-delivered", "t-1")])),
                       (mark_key(partition), mark_value(0)),  # offset 0 reached the rewards topic
                       (late.encode(), journey_codec.encode(None, [_reward(late, "t-2"), _reward(late, "t-3")]))]:
        producer.produce(changelog, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0

    worker = Worker(settings, write_config(tmp_path / "rewardstream.toml"), tmp_path, "w1").start()
    reader = RewardReader(settings)
    try:
        wait_for(lambda: (reader.poll(1.0), len(reader.records) >= 2)[1], 120, "the undelivered rewards",
                 worker.tail)
        reader.poll(3.0)  # anything else would have come with them, in the same first step
        assert sorted((r["user_id"], r["touchpoint_id"]) for r in reader.records) == [(late, "t-2"), (late, "t-3")]
        stats = worker.stats()
        assert stats is not None and stats["rewards_sent_again"] == 2 and stats["rewards_out"] == 2, stats
        # once the mark covering them is written, an idle partition writes nothing more (no mark of a mark)
        time.sleep(3)
        ends = [_end(settings, changelog, partition)]
        time.sleep(4)  # four timer steps
        ends.append(_end(settings, changelog, partition))
        assert ends[0] == ends[1] == 5, ends  # the three written here, the clock record, one mark: no more
    finally:
        reader.close()
        worker.stop()
    # the mark now covers them: a restart from this changelog sends nothing again
    worker.wipe_state()
    worker.start()
    reader = RewardReader(settings)
    try:
        wait_for(lambda: (worker.stats() or {}).get("partitions") is not None, 120, "the restarted worker",
                 worker.tail)
        time.sleep(8)
        stats = worker.stats()
        assert stats is not None and stats["rewards_sent_again"] == 0, stats
    finally:
        reader.close()
        worker.stop()
