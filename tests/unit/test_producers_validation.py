"""Producers refuse bad events at the call, before anything is queued (no broker needed)."""

from __future__ import annotations

import math

import pytest

from pipeline.errors import InvalidEvent
from pipeline.producers import ConversionProducer, TouchpointProducer
from pipeline.settings import Settings
from pipeline.system import AttributionModel, DelayedRewardConfig

NOWHERE = Settings(bootstrap_servers="127.0.0.1:1")
OK = {"user_id": "u1", "episode_id": "e1", "campaign_id": "c1", "channel": "search", "immediate_reward": 1.0}


@pytest.mark.parametrize(("override", "field"), [
    ({"immediate_reward": math.nan}, "immediate_reward"),
    ({"immediate_reward": 1e300}, "immediate_reward"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": 42}, "user_id"),
    ({"state": [1.0, math.inf]}, "state"),
    ({"timestamp_ms": 1_700_000}, "timestamp"),
])
def test_touchpoint_producer_refuses_bad_fields(override: dict[str, object], field: str) -> None:
    producer = TouchpointProducer(NOWHERE)
    try:
        with pytest.raises(InvalidEvent) as err:
            producer.publish(**{**OK, **override})
        assert err.value.field == field
    finally:
        producer.close(timeout=1)


@pytest.mark.parametrize(("override", "field"), [
    ({"value": "-5"}, "value"),
    ({"value": "1.234"}, "value"),
    ({"currency": "XYZ"}, "currency"),
    ({"value": "NaN"}, "value"),
    ({"model": "best"}, "model"),
])
def test_conversion_producer_refuses_bad_fields(override: dict[str, object], field: str) -> None:
    producer = ConversionProducer(NOWHERE)
    try:
        with pytest.raises(InvalidEvent) as err:
            producer.publish(**{"user_id": "u1", "event": "purchase", "value": "10", **override})
        assert err.value.field == field
    finally:
        producer.close(timeout=1)


def test_float_values_keep_their_decimal_meaning() -> None:
    conv = ConversionProducer.build(user_id="u", event="purchase", value=150.1)
    assert str(conv.value) == "150.1"


def test_delayed_reward_config_keeps_the_design_defaults() -> None:
    c = DelayedRewardConfig()
    assert (c.attribution_window_days, c.default_attribution_model, c.time_decay_half_life_hours) == (
        7, AttributionModel.LINEAR, 24.0)
    assert (c.max_pending_rewards, c.replay_buffer_size, c.min_replay_samples, c.replay_batch_size,
            c.replay_frequency, c.batch_attribution_size, c.max_concurrent_attributions) == (
        100000, 50000, 1000, 32, 100, 1000, 10)
    assert c.use_redis_cache and c.use_database_persistence and c.enable_async_processing
    assert c.worker_attribution_table() == {"window_days": 7, "half_life_hours": 24.0, "default_model": "linear"}
    assert DelayedRewardConfig(default_attribution_model="time_decay").default_attribution_model is \
        AttributionModel.TIME_DECAY  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DelayedRewardConfig(replay_buffer_size=0)
