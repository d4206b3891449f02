"""The PostgreSQL ledger sink against the real broker and the project's real PostgreSQL server: the ledger equals
the facts of the rewards topic exactly once, through redelivery, a stopped database, kill -9 of the sink, refused
facts and hostile ids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.compare import differences, facts
from pipeline.events.avro import AvroCodec, reward_to_record
from pipeline.events.types import AttributedReward, RewardKind
from pipeline.kafka.topics import ensure_topics
from pipeline.local_servers import LocalPostgres
from pipeline.settings import Settings
from pipeline.sinks.postgres import DatabaseUnreachable, PostgresSink
from tests.integration.storage_harness import backfill_rewards, json_records, ledger_records, produce_rewards
from tests.integration.stream_harness import wait_for


def count(url: str, sql: str = "SELECT count(*) FROM reward_ledger") -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(sql).fetchone()
    except psycopg.Error:
        return -1
    assert row is not None
    return int(row[0])


def assert_ledger_is(url: str, rewards: list[AttributedReward]) -> None:
    """Every fact once (the ledger's rows are the distinct reward ids), and the current-state tables equal the
    facts folded by the project's one rule (latest revision per pair)."""
    expected = facts(json_records(rewards))
    with psycopg.connect(url) as conn:
        got_rows = ledger_records(conn)
        assert len(got_rows) == len({r.reward_id for r in rewards})
        assert differences(facts(got_rows), expected) == []
        current = {(u, c, t): a for u, c, t, a in conn.execute(
            "SELECT user_id, conversion_id, touchpoint_id, amount_minor FROM reward_current")}
        assert current == expected.amounts
        finals = {(u, t): a for u, t, a in conn.execute("SELECT user_id, touchpoint_id, amount_minor FROM "
                                                         "touchpoint_final")}
        assert finals == expected.finals
        unattributed = {(u, c): r for u, c, r in conn.execute(
            "SELECT user_id, conversion_id, reason FROM unattributed_conversions")}
        assert unattributed == expected.unattributed


@pytest.fixture
def topic(kafka_settings: Settings) -> Settings:
    ensure_topics(kafka_settings, [kafka_settings.topic_rewards])
    return kafka_settings


@pytest.fixture(scope="module")
def rewards(tmp_path_factory: pytest.TempPathFactory) -> list[AttributedReward]:
    found = backfill_rewards(tmp_path_factory.mktemp("rewards"))
    kinds = {r.kind for r in found}
    assert {RewardKind.ATTRIBUTION, RewardKind.FINAL, RewardKind.UNATTRIBUTED, RewardKind.REFUND} <= kinds
    return found


def test_the_ledger_holds_every_fact_once_and_a_redelivery_changes_nothing(
        topic: Settings, database_url: str, rewards: list[AttributedReward]) -> None:
    produce_rewards(topic, rewards)
    sink = PostgresSink(topic, database_url, max_batch=2000).start()
    try:
        wait_for(lambda: count(database_url) == len({r.reward_id for r in rewards}), 60, "the ledger")
        assert_ledger_is(database_url, rewards)
        produce_rewards(topic, rewards[: len(rewards) // 2])  # redelivered facts
        wait_for(sink.caught_up.is_set, 30, "the redelivery")
        time.sleep(0.2)
        assert_ledger_is(database_url, rewards)
    finally:
        sink.close()
    with psycopg.connect(database_url) as conn:
        by_channel = conn.execute("SELECT model, channel, sum(value_minor) FROM attributed_value_by_channel "
                                  "GROUP BY model, channel").fetchall()
        assert sum(v for _, _, v in by_channel) == sum(facts(json_records(rewards)).amounts.values())
        open_touchpoints = conn.execute("SELECT count(*) FROM open_touchpoints").fetchone()
        assert open_touchpoints is not None and open_touchpoints[0] >= 0
        assert conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall() == [(1,), (2,)]


def test_a_sink_restarted_resumes_from_the_offsets_in_the_database(
        topic: Settings, database_url: str, rewards: list[AttributedReward]) -> None:
    half = len(rewards) // 2
    produce_rewards(topic, rewards[:half])
    sink = PostgresSink(topic, database_url, max_batch=1000).start()
    wait_for(sink.caught_up.is_set, 60, "the first half")
    sink.close()
    produce_rewards(topic, rewards[half:])
    # a new consumer group: Kafka's committed offsets are not what it resumes from
    sink = PostgresSink(topic, database_url, group="another-group", max_batch=1000).start()
    try:
        wait_for(lambda: count(database_url) == len({r.reward_id for r in rewards}), 60, "the second half")
        wait_for(sink.caught_up.is_set, 30, "the end of the topic")
    finally:
        sink.close()
    assert_ledger_is(database_url, rewards)
    assert count(database_url, "SELECT count(*) FROM reward_ledger WHERE kafka_offset IS NULL") == 0


def test_postgres_stopped_mid_stream_the_sink_waits_and_resumes_with_nothing_lost_or_doubled(
        topic: Settings, tmp_path: Path, rewards: list[AttributedReward]) -> None:
    server = LocalPostgres(instance="stopped", cache_dir=tmp_path)
    status, _ = server.start()
    assert status.address
    url = status.address
    try:
        sink = PostgresSink(topic, url, max_batch=500, retry_seconds=0.2).start()
        try:
            third = len(rewards) // 3
            produce_rewards(topic, rewards[:third])
            wait_for(lambda: count(url) > 0, 30, "the first facts")
            server.stop()
            produce_rewards(topic, rewards[third:])
            time.sleep(1.0)  # the sink holds a batch and retries meanwhile
            assert sink.stats["facts"] < len(rewards)
            server.start()
            wait_for(lambda: count(url) == len({r.reward_id for r in rewards}), 60, "the rest after the restart")
        finally:
            sink.close()
        assert_ledger_is(url, rewards)
    finally:
        server.stop(purge=True)


def sink_is_inside_a_transaction(url: str) -> bool:
    """Whether another session of the ledger's database (the sink's) has a transaction open: a kill now lands
    between a batch's first write and its commit."""
    return count(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL") > 0


def test_kill_9_of_the_sink_mid_batch_leaves_every_fact_exactly_once(
        topic: Settings, database_url: str, rewards: list[AttributedReward]) -> None:
    # Two thirds of the facts first: the kill lands before the sink could have written everything, however fast
    # the machine; the rest after the kill, for the restarted sink.
    two_thirds = 2 * len(rewards) // 3
    produce_rewards(topic, rewards[:two_thirds])
    env = {**os.environ, "REWARDSTREAM_TOPIC_REWARDS": topic.topic_rewards}
    cmd = [sys.executable, "-m", "pipeline.cli.main", "sink", "postgres", "--bootstrap", topic.bootstrap_servers,
           "--database-url", database_url, "--max-batch", "300"]
    produced = len({r.reward_id for r in rewards[:two_thirds]})
    total = len({r.reward_id for r in rewards})
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (count(database_url) >= produced // 3 and sink_is_inside_a_transaction(database_url)):
            assert time.monotonic() < deadline, "timed out waiting for the sink to be mid-batch past a third"
            assert count(database_url) < produced, "the sink wrote everything before it was seen mid-batch"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert produced // 3 <= count(database_url) < produced
    produce_rewards(topic, rewards[two_thirds:])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: count(database_url) == total, 60, "every fact after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert_ledger_is(database_url, rewards)


def test_an_unreachable_database_is_a_clear_error_naming_the_host_never_the_password(topic: Settings) -> None:
    from pipeline.ports import free_port

    port = free_port()
    url = f"postgresql://analyst:pa55-S3cret@127.0.0.1:{port}/ledger"
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as caught:
        PostgresSink(topic, url)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(caught.value) and "pa55-S3cret" not in str(caught.value)
    cli = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "sink", "postgres", "--bootstrap",
                          topic.bootstrap_servers, "--database-url", url], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 2
    assert f"127.0.0.1:{port}" in cli.stderr and "pa55-S3cret" not in cli.stderr + cli.stdout


def _reward(user: str, touchpoint: str, conversion: str, amount: int, **fields: object) -> AttributedReward:
    base = AttributedReward(kind=RewardKind.ATTRIBUTION, touchpoint_id=touchpoint, episode_id="ep;1", user_id=user,
                            campaign_id="camp'1", channel="search", revision=0, amount_minor=amount,
                            base_currency="USD", original_reward=0.5, touch_time_ms=1_700_000_000_000,
                            conversion_id=conversion, model="linear", conversion_time_ms=1_700_000_100_000,
                            journey_length=1, position=0, event="purchase")
    return base._replace(**fields)  # type: ignore[arg-type]


def test_refused_facts_go_to_dead_letters_with_the_reason_and_hostile_ids_are_stored_verbatim(
        topic: Settings, database_url: str) -> None:
    hostile = [
        _reward("o'brien\"; DROP TABLE reward_ledger; --", "tp'1;--", "conv\"1", 1234),
        _reward("Zoë-日本-🙂", "tp-ü-\\N-\t", "c-🙂", 99),
        _reward("user%:colon", "tp:with:colons", "c%25:x", 7, revision=3, kind=RewardKind.CORRECTION),
    ]
    refused_by_schema = [
        _reward("u-nul", "tp\x00nul", "c-nul", 5),  # PostgreSQL text cannot hold NUL
        _reward("u-currency", "tp-cur", "c-cur", 5, base_currency="usd"),  # the ledger's CHECK on currency codes
    ]
    after = [_reward("u-after", "tp-after", "c-after", 42)]
    produce_rewards(topic, [*hostile, *refused_by_schema], raw=[(b"garbage", b"\x00not avro at all")])
    produce_rewards(topic, after)
    sink = PostgresSink(topic, database_url).start()
    try:
        wait_for(lambda: count(database_url, "SELECT count(*) FROM sink_dead_letters") == 3, 30, "dead letters")
        wait_for(lambda: count(database_url) == len(hostile) + len(after), 30, "the good facts")
    finally:
        sink.close()
    with psycopg.connect(database_url) as conn:
        stored = {(u, t, c, camp, ep, rid) for u, t, c, camp, ep, rid in conn.execute(
            "SELECT user_id, touchpoint_id, conversion_id, campaign_id, episode_id, reward_id FROM reward_ledger")}
        assert stored == {(r.user_id, r.touchpoint_id, r.conversion_id, r.campaign_id, r.episode_id, r.reward_id)
                          for r in [*hostile, *after]}
        reasons = sorted(row[0] for row in conn.execute("SELECT reason FROM sink_dead_letters"))
        assert reasons[0].startswith("not an attributed-reward record") and "C3 01" in reasons[0]
        assert reasons[1].startswith("refused by the ledger's schema") and "NUL (0x00)" in reasons[1]
        assert reasons[2].startswith("refused by the ledger's schema") and "base_currency_check" in reasons[2]
        payload = conn.execute("SELECT payload FROM sink_dead_letters WHERE reason LIKE 'not an%'").fetchone()
        assert payload is not None and bytes(payload[0]) == b"\x00not avro at all"
    assert AvroCodec("attributed_reward").encode(reward_to_record(hostile[0]))  # the codec carried them as they are


def test_the_demos_ledger_step_prints_the_value_per_channel_by_model(
        topic: Settings, rewards: list[AttributedReward]) -> None:
    from pipeline.cli.demo_ledger import write_ledger_and_answer

    produce_rewards(topic, rewards)
    lines: list[str] = []
    assert write_ledger_and_answer(topic, lines.append)
    assert lines[0].startswith(f"ledger: {len({r.reward_id for r in rewards}):,} reward facts in PostgreSQL")
    assert "attributed_value_by_channel" in lines[1]
    expected: dict[tuple[str | None, str], int] = {}
    for r in rewards:  # every pair at its latest revision, summed per model and channel
        if r.kind in (RewardKind.ATTRIBUTION, RewardKind.CORRECTION, RewardKind.REFUND):
            expected.setdefault((r.model, r.channel), 0)
    assert len(lines) == 2 + len({m for m, _ in expected})
    assert all(any(f"{channel} " in line for line in lines[2:]) for _, channel in expected)
