"""One user's journey as a state machine: (journey, event, watermark) → (journey, attributed rewards).

Pure: no clock, no I/O. Time is the events' own timestamps and the watermark handed in by the caller.
Every check that can refuse an event runs before the journey is touched, so a refused event leaves the
state exactly as it was. For speed the functions update the journey they are given and return it; the
caller owns that object and persists whatever is returned.

Invariant that makes ``final`` safe: an event is accepted only if its time ≥ watermark, and a touchpoint
is finalised only once watermark > touch time + longest window. An accepted conversion or late
touchpoint therefore can never reach a touchpoint that is already final. A touchpoint's final total
counts refunds dated within its window only (see ``_credit``), so it too depends on event time alone.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline.attribution.models import Model
from pipeline.engine import refusals
from pipeline.engine.config import EngineConfig
from pipeline.errors import DuplicateEvent
from pipeline.events.types import (
    NO_TOUCHPOINT_IN_WINDOW,
    UNKNOWN_USER,
    AttributedReward,
    Conversion,
    RewardKind,
    Touchpoint,
)
from pipeline.money.exact import split_exact, to_minor


class Touch(NamedTuple):
    """A touchpoint as the engine keeps it: immutable, so conversions share it instead of copying."""

    time_ms: int
    touchpoint_id: str
    episode_id: str
    campaign_id: str
    channel: str
    immediate_reward: float


class Split(NamedTuple):
    """A conversion (or refund) as last attributed. ``revision`` is that of the last fact published about it
    (−1 before the first: a refund of a conversion that pays nobody yet), so each new fact takes the next one
    and a consumer keeping the highest revision keeps the last word. ``touches`` are empty while it pays
    nobody, and kept here otherwise, so refunds and re-splits still work after a touch is final."""

    conversion_id: str
    event: str
    time_ms: int
    currency: str
    value_minor: int
    base_minor: int
    model: str
    used_model: str
    revision: int
    touches: tuple[Touch, ...]
    shares: tuple[int, ...]
    local_shares: tuple[int, ...]
    refund_of: str | None = None
    refunded_minor: int = 0
    refunded_base: int = 0


@dataclass(slots=True)
class Journey:
    touches: list[Touch] = field(default_factory=list)  # open touchpoints, sorted by (time, id)
    earned: list[int] = field(default_factory=list)  # running total of touches[i], base minor units
    splits: list[Split] = field(default_factory=list)  # conversions and refunds still retained

    def is_empty(self) -> bool:
        return not self.touches and not self.splits


@dataclass(frozen=True, slots=True)
class Context:
    """What a step needs besides the journey: settings, models and the current watermark."""

    config: EngineConfig
    models: Mapping[str, Model]
    watermark: int | None
    ingest_ms: int | None = None  # when the event entered the log (Kafka record timestamp), if known


class StepResult(NamedTuple):
    journey: Journey
    rewards: list[AttributedReward]
    dropped: int = 0


def _check_time(time_ms: int, ctx: Context) -> None:
    if ctx.watermark is not None and time_ms < ctx.watermark:
        raise refusals.late(time_ms, ctx.watermark, ctx.config.allowed_lateness_ms)
    # "Future" is judged against when the record entered the log (its Kafka timestamp), a real clock that is
    # part of the log, so a replay judges every event the same way. Other events are no reference: one event
    # dated far ahead would otherwise decide what counts as future for the rest. A file has no ingest time;
    # there the clock's quorum keeps a few wrong timestamps from moving it (see EventClock).
    if ctx.ingest_ms is not None and time_ms > ctx.ingest_ms + ctx.config.max_future_skew_ms:
        raise refusals.future(time_ms, ctx.config.max_future_skew_ms, ctx.ingest_ms)


def _rewards(kind: RewardKind, split: Split, user_id: str, base_currency: str) -> list[AttributedReward]:
    n = len(split.touches)
    cid, rev, model, cur, value, ctime, event = (split.conversion_id, split.revision, split.used_model,
                                                 split.currency, split.value_minor, split.time_ms, split.event)
    new = AttributedReward  # positional construction: the hot path of long journeys
    return [
        new(kind, t.touchpoint_id, t.episode_id, user_id, t.campaign_id, t.channel, rev, amount, base_currency,
            t.immediate_reward, t.time_ms, cid, model, cur, local, value, ctime, i, n, event)
        for i, (t, amount, local) in enumerate(zip(split.touches, split.shares, split.local_shares, strict=True))
    ]


def _reason(journey: Journey, conversion_ms: int, config: EngineConfig) -> str:
    """Why a conversion pays nobody, by event time alone: touchpoints within the longest window before an
    accepted conversion cannot have been expired yet, whatever the batching."""
    horizon = conversion_ms - config.max_window_ms
    recent = any(horizon <= t.time_ms <= conversion_ms for t in journey.touches)
    return NO_TOUCHPOINT_IN_WINDOW if recent else UNKNOWN_USER


def _unattributed(split: Split, user_id: str, base_currency: str, reason: str) -> AttributedReward:
    return AttributedReward(
        RewardKind.UNATTRIBUTED, "", "", user_id, "", "", split.revision, 0, base_currency, 0.0, split.time_ms,
        split.conversion_id, split.model, split.currency, 0, split.value_minor, split.time_ms, None, 0, split.event,
        reason)


def _next_revision(original: Split) -> int:
    """The revision of the next fact about a conversion (not a refund: see ``Split``). Its first fact was
    published at revision 0 even where a journey stored by an earlier build says −1 for it (that build did not
    count an unattributed fact), hence the floor."""
    return max(original.revision, 0) + 1


def _divide(split: Split, touches: tuple[Touch, ...], ctx: Context) -> Split:
    """Split a conversion's value over ``touches`` with its model (linear when the model cannot judge)."""
    model = ctx.models[split.model]
    times = [t.time_ms for t in touches]
    channels = [t.channel for t in touches]
    weights = model.weights(times, channels, split.time_ms)
    used = split.model
    if weights is None:
        weights, used = [1] * len(touches), "linear"
    return split._replace(
        touches=touches, used_model=used, shares=tuple(split_exact(split.base_minor, weights)),
        local_shares=tuple(split_exact(split.value_minor, weights)),
    )


def _mirror(refund: Split, original: Split) -> Split:
    """A refund's negative shares in proportion to the original's current split."""
    return refund._replace(
        touches=original.touches, used_model=original.used_model,
        shares=tuple(split_exact(-refund.base_minor, list(original.shares))),
        local_shares=tuple(split_exact(-refund.value_minor, list(original.local_shares))),
    )


def _credit(journey: Journey, old: Split | None, new: Split, max_window_ms: int) -> None:
    """Move each open touch's running total from the old split's share to the new one.

    A refund counts towards a touch's total only if it is dated within the touch's window (refund time ≤
    touch time + longest window). That makes ``final`` a function of event time alone: a refund dated later
    is a separate fact whether it arrives before or after the final, so replays in any order agree."""
    delta: dict[str, int] = {}
    for split, sign in ((old, -1), (new, 1)):
        if split is None:
            continue
        refund_time = split.time_ms if split.refund_of is not None else None
        for t, s in zip(split.touches, split.shares, strict=True):
            if refund_time is not None and refund_time > t.time_ms + max_window_ms:
                continue
            delta[t.touchpoint_id] = delta.get(t.touchpoint_id, 0) + sign * s
    earned = journey.earned
    for i, t in enumerate(journey.touches):
        d = delta.get(t.touchpoint_id)
        if d:
            earned[i] += d


def _final(t: Touch, earned: int, user_id: str, base_currency: str) -> AttributedReward:
    return AttributedReward(
        kind=RewardKind.FINAL, touchpoint_id=t.touchpoint_id, episode_id=t.episode_id, user_id=user_id,
        campaign_id=t.campaign_id, channel=t.channel, revision=0, amount_minor=earned,
        base_currency=base_currency, original_reward=t.immediate_reward, touch_time_ms=t.time_ms,
    )


def apply_touchpoint(journey: Journey | None, tp: Touchpoint, ctx: Context) -> StepResult:
    """Add a touchpoint; re-split every retained conversion it belongs to (a late touchpoint)."""
    journey = journey if journey is not None else Journey()
    tid = tp.touchpoint_id
    # Duplicates first: a replayed event already in the state is a duplicate, whatever the watermark says.
    if any(t.touchpoint_id == tid for t in journey.touches) or any(
        t.touchpoint_id == tid for s in journey.splits for t in s.touches
    ):
        raise DuplicateEvent("touchpoint", tid)
    _check_time(tp.timestamp_ms, ctx)
    touch = Touch(tp.timestamp_ms, tid, tp.episode_id, tp.campaign_id, tp.channel, tp.immediate_reward)
    base = ctx.config.rates.base
    # A conversion said to pay nobody for want of any touchpoint in reach (unknown_user) is said again when an
    # earlier touchpoint turns up that is in reach but outside its window: the last word then does not depend
    # on which arrived first. (One inside its window attributes it below instead.)
    rewards: list[AttributedReward] = []
    for idx, split in enumerate(journey.splits):
        if (not split.touches and split.refund_of is None
                and split.time_ms - ctx.config.max_window_ms <= touch.time_ms
                < split.time_ms - ctx.config.window_for(split.event)
                and _reason(journey, split.time_ms, ctx.config) == UNKNOWN_USER):
            journey.splits[idx] = split = split._replace(revision=_next_revision(split))
            rewards.append(_unattributed(split, tp.user_id, base, NO_TOUCHPOINT_IN_WINDOW))
    at = bisect(journey.touches, touch)
    journey.touches.insert(at, touch)
    journey.earned.insert(at, 0)
    # Re-split the conversions this touchpoint falls inside, oldest first, then their refunds.
    for idx, split in enumerate(journey.splits):
        if split.refund_of is not None:
            continue
        if not (split.time_ms - ctx.config.window_for(split.event) <= touch.time_ms <= split.time_ms):
            continue
        new = _divide(split, tuple(sorted((*split.touches, touch))), ctx)
        new = new._replace(revision=_next_revision(split))
        kind = RewardKind.CORRECTION if split.touches else RewardKind.ATTRIBUTION
        journey.splits[idx] = new
        _credit(journey, split if split.touches else None, new, ctx.config.max_window_ms)
        rewards.extend(_rewards(kind, new, tp.user_id, base))
        for ridx, refund in enumerate(journey.splits):
            if refund.refund_of == split.conversion_id:
                mirrored = _mirror(refund, new)._replace(revision=refund.revision + 1)
                journey.splits[ridx] = mirrored
                _credit(journey, refund if refund.touches else None, mirrored, ctx.config.max_window_ms)
                rewards.extend(_rewards(RewardKind.REFUND, mirrored, tp.user_id, base))
    dropped = 0
    while len(journey.touches) > ctx.config.max_journey_length:
        oldest = journey.touches.pop(0)
        rewards.append(_final(oldest, journey.earned.pop(0), tp.user_id, base))
        dropped += 1
    return StepResult(journey, rewards, dropped)


def apply_conversion(journey: Journey | None, conv: Conversion, ctx: Context) -> StepResult:
    """Attribute a conversion over the touchpoints in its window, or mirror the conversion it refunds."""
    journey = journey if journey is not None else Journey()
    if any(s.conversion_id == conv.conversion_id for s in journey.splits):
        raise DuplicateEvent("conversion", conv.conversion_id)
    _check_time(conv.timestamp_ms, ctx)
    value_minor = to_minor(conv.value, conv.currency)
    rates = ctx.config.rates
    if conv.currency != rates.base and conv.currency not in rates.rates:
        raise refusals.no_rate(conv.currency, rates.base)
    base_minor = rates.to_base_minor(value_minor, conv.currency)
    model = conv.model or ctx.config.default_model
    if model not in ctx.models:
        raise refusals.unknown_model(model)
    base = ctx.config.rates.base
    if conv.refund_of is not None:
        return _apply_refund(journey, conv, value_minor, base_minor, ctx)
    start = conv.timestamp_ms - ctx.config.window_for(conv.event)
    eligible = tuple(t for t in journey.touches if start <= t.time_ms <= conv.timestamp_ms)
    split = Split(conv.conversion_id, conv.event, conv.timestamp_ms, conv.currency, value_minor, base_minor,
                  model, model, 0, (), (), ())
    if eligible:
        split = _divide(split, eligible, ctx)
        _credit(journey, None, split, ctx.config.max_window_ms)
        rewards = _rewards(RewardKind.ATTRIBUTION, split, conv.user_id, base)
    else:
        # Said out loud, so that analysts can count these and a caller waiting for the split need not wait out
        # a timeout. A late touchpoint may still attribute it (the next revision then); the split is kept for that.
        rewards = [_unattributed(split, conv.user_id, base, _reason(journey, conv.timestamp_ms, ctx.config))]
    journey.splits.append(split)
    return StepResult(journey, rewards)


def _apply_refund(journey: Journey, conv: Conversion, value_minor: int, base_minor: int,
                  ctx: Context) -> StepResult:
    orig_idx = next((i for i, s in enumerate(journey.splits)
                     if s.conversion_id == conv.refund_of and s.refund_of is None), None)
    if orig_idx is None:
        raise refusals.unknown_refund(conv.refund_of or "", conv.user_id)
    original = journey.splits[orig_idx]
    if conv.timestamp_ms - original.time_ms > ctx.config.refund_retention_ms:
        # Decided by event time, not by whether expiry has forgotten the original yet, so that every
        # arrival order and every batching of the input gives the same answer.
        raise refusals.refund_too_old(conv.timestamp_ms - original.time_ms, conv.refund_of or "",
                                      ctx.config.refund_retention_ms)
    if conv.currency != original.currency:
        raise refusals.refund_currency(conv.currency, original.currency)
    left = original.value_minor - original.refunded_minor
    if value_minor > left:
        raise refusals.refund_exceeds(value_minor, left)
    if value_minor == left:  # the last refund takes exactly what is left in base currency too
        base_minor = original.base_minor - original.refunded_base
    journey.splits[orig_idx] = original._replace(refunded_minor=original.refunded_minor + value_minor,
                                                 refunded_base=original.refunded_base + base_minor)
    refund = Split(conv.conversion_id, conv.event, conv.timestamp_ms, conv.currency, value_minor, base_minor,
                   original.model, original.used_model, -1, (), (), (), refund_of=original.conversion_id)
    rewards: list[AttributedReward] = []
    if original.touches:
        refund = _mirror(refund, original)._replace(revision=0)
        _credit(journey, None, refund, ctx.config.max_window_ms)
        rewards = _rewards(RewardKind.REFUND, refund, conv.user_id, ctx.config.rates.base)
    journey.splits.append(refund)
    return StepResult(journey, rewards)


def expire(journey: Journey, watermark: int, user_id: str, config: EngineConfig) -> StepResult:
    """Emit ``final`` for touchpoints whose window closed before ``watermark`` and forget them; drop
    conversions past their refund retention."""
    horizon = watermark - config.max_window_ms  # final iff touch time < horizon
    rewards: list[AttributedReward] = []
    touches = journey.touches
    n = 0
    while n < len(touches) and touches[n].time_ms < horizon:
        n += 1
    if n:
        base = config.rates.base
        rewards = [_final(t, e, user_id, base) for t, e in zip(touches[:n], journey.earned[:n], strict=True)]
        del touches[:n]
        del journey.earned[:n]
    keep_after = watermark - config.refund_retention_ms
    if any(s.time_ms < keep_after for s in journey.splits):
        gone = {s.conversion_id for s in journey.splits if s.refund_of is None and s.time_ms < keep_after}
        journey.splits = [s for s in journey.splits
                          if not (s.conversion_id in gone or s.refund_of in gone)]
    return StepResult(journey, rewards)


def next_deadline(journey: Journey, config: EngineConfig) -> int | None:
    """The smallest watermark at which :func:`expire` would change this journey."""
    candidates = []
    if journey.touches:
        candidates.append(journey.touches[0].time_ms + config.max_window_ms + 1)
    originals = [s.time_ms for s in journey.splits if s.refund_of is None]
    if originals:
        candidates.append(min(originals) + config.refund_retention_ms + 1)
    return min(candidates) if candidates else None
