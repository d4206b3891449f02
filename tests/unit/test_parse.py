"""Validation of human input: every bad field is named; good input keeps its types."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from pipeline.errors import InvalidEvent
from pipeline.events.parse import parse_event

TP: dict[str, Any] = {"type": "touchpoint", "touchpoint_id": "t", "episode_id": "e", "user_id": "u",
                      "campaign_id": "c", "channel": "search", "timestamp": "2026-01-01T00:00:00Z",
                      "immediate_reward": 1, "state": [0.1, 2], "action": {"bid": 3}}
CV: dict[str, Any] = {"type": "conversion", "conversion_id": "c", "user_id": "u", "event": "Purchase",
                      "value": 19.99, "currency": "usd", "timestamp": 1767225600000}


def test_good_events_parse_with_their_types() -> None:
    t = parse_event(TP)
    assert t.timestamp_ms == 1767225600000 and t.state == [0.1, 2] and t.action == {"bid": 3}
    c = parse_event(CV)
    assert c.value == Decimal("19.99") and c.currency == "USD" and c.event == "purchase"  # type: ignore[union-attr]


def test_iso_with_offset_and_epoch_ms_agree() -> None:
    a = parse_event({**TP, "timestamp": "2026-01-01T02:00:00+02:00"})
    assert a.timestamp_ms == 1767225600000


def test_sub_millisecond_digits_are_floored_exactly() -> None:
    assert parse_event({**TP, "timestamp": "2026-01-01T00:00:00.0019Z"}).timestamp_ms == 1767225600001


def test_refund_may_state_a_negative_value() -> None:
    r = parse_event({**CV, "refund_of": "c0", "value": -5})
    assert r.value == Decimal(5)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"episode_id": None}, "episode_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 7}, "user_id"),
        ({"timestamp": "2026-01-01T00:00:00"}, "timestamp"),  # no zone
        ({"timestamp": 1767225600}, "timestamp"),  # seconds
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"immediate_reward": float("nan")}, "immediate_reward"),
        ({"immediate_reward": float("inf")}, "immediate_reward"),
        ({"immediate_reward": 1e12}, "immediate_reward"),
        ({"immediate_reward": "1"}, "immediate_reward"),
        ({"type": "click"}, "type"),
        ({"touchpoint_id": "x" * 300}, "touchpoint_id"),
    ],
)
def test_bad_touchpoints_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event({**TP, **patch})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"value": -1}, "value"),
        ({"value": float("nan")}, "value"),
        ({"value": "NaN"}, "value"),
        ({"value": "12abc"}, "value"),
        ({"value": 1e15}, "value"),
        ({"value": 10.005}, "value"),
        ({"value": None}, "value"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": None}, "currency"),
        ({"model": "magic"}, "model"),
        ({"event": None}, "event"),
        ({"currency": "JPY", "value": 10.5}, "value"),
    ],
)
def test_bad_conversions_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event({**CV, **patch})
    assert info.value.field == field


def test_not_an_object() -> None:
    with pytest.raises(InvalidEvent):
        parse_event([1, 2])
