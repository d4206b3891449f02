"""The three facts the pipeline moves: touchpoints in, conversions in, attributed rewards out."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """An agent's action shown to a user: the experience whose reward may be corrected later."""

    touchpoint_id: str
    episode_id: str
    user_id: str
    campaign_id: str
    channel: str
    timestamp_ms: int
    immediate_reward: float
    creative_type: str | None = None
    state: Any = None
    action: Any = None


@dataclass(frozen=True, slots=True)
class Conversion:
    """A business outcome from a conversion feed. ``value`` is in ``currency`` units and never negative:
    a refund carries the refunded amount and names the conversion it reverses in ``refund_of``."""

    conversion_id: str
    user_id: str
    event: str
    value: Decimal
    currency: str
    timestamp_ms: int
    refund_of: str | None = None
    model: str | None = None


Event = Touchpoint | Conversion


class AttributionModel(StrEnum):
    """The attribution models a conversion may name in its ``model`` field (implemented in
    ``pipeline.attribution``), in the order the native engine numbers them. The one place their names are
    spelled in Python; ``tests/unit/test_native_agrees.py`` holds the native engine's and config/example.toml's
    list to it."""

    LAST_CLICK = "last_click"
    FIRST_CLICK = "first_click"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"
    DATA_DRIVEN = "data_driven"
    SHAPLEY = "shapley"


MODEL_NAMES: tuple[str, ...] = tuple(m.value for m in AttributionModel)


class RewardKind(StrEnum):
    ATTRIBUTION = "attribution"  # first split of a conversion over its touchpoints
    CORRECTION = "correction"  # a re-split after a late touchpoint; supersedes earlier revisions
    REFUND = "refund"  # negative shares mirroring the refunded conversion's split
    FINAL = "final"  # the touchpoint's window closed: its total will not change through attribution
    UNATTRIBUTED = "unattributed"  # a conversion with no eligible touchpoint (``reason`` says why); pays nobody


# Why a conversion paid nobody (the ``reason`` of an UNATTRIBUTED event). Both depend on event time only.
UNKNOWN_USER = "unknown_user"  # no touchpoint of the user within the longest window: none the engine can know
NO_TOUCHPOINT_IN_WINDOW = "no_touchpoint_in_window"  # touchpoints within the longest window, none in this one


def _id_part(text: str) -> str:
    """An id as one component of a reward id: ``%`` and ``:`` escaped, so components never run together."""
    if ":" in text or "%" in text:
        return text.replace("%", "%25").replace(":", "%3A")
    return text


class AttributedReward(NamedTuple):
    """One output fact. ``(kind, user_id, conversion_id, touchpoint_id, revision)`` identifies it, so a
    consumer can tell a redelivery from a new fact; the latest revision of a (conversion, touchpoint) pair
    wins. Ids are scoped per user: duplicates are detected within one user's journey, and the same id under
    two users names two facts.

    Money is in integer minor units: ``amount_minor`` in the base currency, ``local_amount_minor`` in the
    conversion's own currency. For ``final`` events the amount is the touchpoint's total and the
    conversion fields are empty. An ``unattributed`` event names the conversion and its ``reason``; its
    touchpoint fields are empty and ``touch_time_ms`` is the conversion's time. A NamedTuple: the engine
    builds one per share, so construction cost matters (a frozen dataclass of 20 fields costs several times
    more)."""

    kind: RewardKind
    touchpoint_id: str
    episode_id: str
    user_id: str
    campaign_id: str
    channel: str
    revision: int
    amount_minor: int
    base_currency: str
    original_reward: float
    touch_time_ms: int
    conversion_id: str | None = None
    model: str | None = None
    currency: str | None = None
    local_amount_minor: int | None = None
    conversion_value_minor: int | None = None
    conversion_time_ms: int | None = None
    position: int | None = None
    journey_length: int | None = None
    event: str | None = None
    reason: str | None = None

    @property
    def reward_id(self) -> str:
        """Stable id of this fact: equal ids are the same fact delivered twice."""
        user, conversion, touch = self.user_id, self.conversion_id or "", self.touchpoint_id
        if ":" in user or "%" in user or ":" in conversion or "%" in conversion or ":" in touch or "%" in touch:
            user, conversion, touch = _id_part(user), _id_part(conversion), _id_part(touch)
        return f"{self.kind}:{user}:{conversion}:{touch}:{self.revision}"

    @property
    def delay_seconds(self) -> float | None:
        if self.conversion_time_ms is None:
            return None
        return (self.conversion_time_ms - self.touch_time_ms) / 1000.0
