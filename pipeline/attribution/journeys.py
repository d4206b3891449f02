"""Completed journeys, as the engine completed them: what the learned models and the delay model fit on.

One definition of a journey, the engine's, read off its own output instead of being reconstructed from the raw
events a second way (with other duplicate rules, windows or expiry):

- **Converted**: a conversion's eligible touchpoints, in the latest revision of its split (the engine's
  duplicates, windows, journey caps and late corrections already applied). A repeat converter's second
  journey holds every touchpoint of its window, as the engine credits it.
- **Not converted**: touchpoints that went final without any conversion crediting them, per user in time
  order, cut into journeys no longer than the attribution window (a conversion could never have seen touches
  further apart) and the journey cap.
- **Censored**: journeys with a touchpoint whose window had not closed when the log ended (its final came from
  the end-of-input flush): whether they would have converted is unknown. They are left out, and counted.

Pure: fed reward records (the JSON form, as the backfill writes them), no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from pipeline.events.jsonl import parse_iso_ms


class Touch(NamedTuple):  # a NamedTuple: hundreds of thousands are built when a month is read
    touchpoint_id: str
    channel: str
    campaign_id: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class ConvertedJourney:
    user_id: str
    conversion_id: str
    touches: tuple[Touch, ...]  # in time order (the split's positions)
    value_minor: int  # the conversion's value in the base currency (the split's total)
    time_ms: int  # the conversion's time


@dataclass(frozen=True, slots=True)
class LapsedJourney:
    """Touchpoints whose windows closed with no conversion crediting them."""

    user_id: str
    touches: tuple[Touch, ...]


class TouchOutcome(NamedTuple):
    """What became of a touchpoint: its final total, and when a conversion first credited it (None: never)."""

    user_id: str
    touch: Touch
    total_minor: int
    first_credit_ms: int | None


@dataclass
class OutcomeArrays:
    """Every final touchpoint's outcome as columns: the delay model's input, with no object per touchpoint."""

    names: list[str]  # what the channel and campaign codes stand for
    channel: npt.NDArray[np.int64]
    campaign: npt.NDArray[np.int64]
    touch_ms: npt.NDArray[np.int64]
    first_credit_ms: npt.NDArray[np.int64]  # −1: never credited
    total_minor: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.touch_ms)

    @classmethod
    def of(cls, outcomes: Sequence[TouchOutcome]) -> OutcomeArrays:
        codes: dict[str, int] = {}
        n = len(outcomes)

        def column(values: Iterable[int]) -> npt.NDArray[np.int64]:
            return np.fromiter(values, dtype=np.int64, count=n)

        channel = column(codes.setdefault(o.touch.channel, len(codes)) for o in outcomes)
        campaign = column(codes.setdefault(o.touch.campaign_id, len(codes)) for o in outcomes)
        return cls(list(codes), channel, campaign, column(o.touch.time_ms for o in outcomes),
                   column(-1 if o.first_credit_ms is None else o.first_credit_ms for o in outcomes),
                   column(o.total_minor for o in outcomes))


@dataclass
class JourneyPaths:
    """Journeys reduced to what the learned models fit on: channel sequences, and converted ones' values; and the
    touchpoints' outcomes, for the delay model."""

    converted: list[tuple[tuple[str, ...], int]] = field(default_factory=list)  # (channels, base value)
    lapsed: list[tuple[str, ...]] = field(default_factory=list)
    censored: list[tuple[str, ...]] = field(default_factory=list)
    unattributed_conversions: int = 0
    outcomes: OutcomeArrays | None = None
    end_ms: int | None = None  # the watermark when the log ended

    def paths(self) -> Iterator[tuple[tuple[str, ...], bool]]:
        for channels, _ in self.converted:
            yield channels, True
        for channels in self.lapsed:
            yield channels, False

    def counts(self) -> dict[str, int]:
        return {"converted": len(self.converted), "not_converted": len(self.lapsed),
                "censored": len(self.censored), "censored_touchpoints": sum(len(c) for c in self.censored),
                "unattributed_conversions": self.unattributed_conversions}


@dataclass
class Journeys:
    converted: list[ConvertedJourney] = field(default_factory=list)
    lapsed: list[LapsedJourney] = field(default_factory=list)
    censored: list[LapsedJourney] = field(default_factory=list)  # still open when the log ended: left out
    unattributed_conversions: int = 0  # conversions with no touchpoint in their window (no journey)
    outcomes: list[TouchOutcome] = field(default_factory=list)  # every touchpoint that went final
    end_ms: int | None = None  # the watermark when the log ended: what was still open then is censored

    def sort(self) -> Journeys:
        """One order whichever engine collected them: conversions by time, others by user then time."""
        self.converted.sort(key=lambda c: (c.time_ms, c.user_id, c.conversion_id))
        self.lapsed.sort(key=lambda j: (j.user_id, j.touches[0].time_ms, j.touches[0].touchpoint_id))
        self.censored.sort(key=lambda j: (j.user_id, j.touches[0].time_ms, j.touches[0].touchpoint_id))
        self.outcomes.sort(key=lambda o: (o.user_id, o.touch.time_ms, o.touch.touchpoint_id))
        return self

    def paths(self) -> Iterator[tuple[tuple[str, ...], bool]]:
        """(channels, converted) per journey, the Markov and Shapley models' input."""
        for c in self.converted:
            yield tuple(t.channel for t in c.touches), True
        for lapsed in self.lapsed:
            yield tuple(t.channel for t in lapsed.touches), False

    def counts(self) -> dict[str, int]:
        return self.as_paths().counts()

    def as_paths(self) -> JourneyPaths:
        def channels(touches: tuple[Touch, ...]) -> tuple[str, ...]:
            return tuple(t.channel for t in touches)

        return JourneyPaths([(channels(c.touches), c.value_minor) for c in self.converted],
                            [channels(j.touches) for j in self.lapsed], [channels(j.touches) for j in self.censored],
                            self.unattributed_conversions, OutcomeArrays.of(self.outcomes), self.end_ms)


def parse_ms(value: Any) -> int:
    """An output time (ISO-8601 with Z, or epoch ms) as epoch ms."""
    if isinstance(value, int):
        return value
    return parse_iso_ms(value)


class JourneyCollector:
    """Folds reward records into completed journeys. ``window_ms``: the longest attribution window (how long a
    touchpoint stays open); ``max_length``: the engine's journey cap."""

    def __init__(self, window_ms: int, max_length: int) -> None:
        self.window_ms = window_ms
        self.max_length = max_length
        self.end: int | None = None  # the caller's note of the watermark when the log ended
        # (user, conversion) → (revision, {position: (touch, amount)}, conversion time)
        self._splits: dict[tuple[str, str], tuple[int, dict[int, tuple[Touch, int]], int]] = {}
        self._finals: dict[tuple[str, str], tuple[Touch, int]] = {}
        self._unattributed: dict[tuple[str, str], int] = {}  # (user, conversion) → latest revision

    def add_all(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self.add(r)

    def add(self, r: dict[str, Any]) -> None:
        kind = r["kind"]
        if kind == "attribution" or kind == "correction":
            key = (r["user_id"], r["conversion_id"])
            revision = r["revision"]
            seen = self._splits.get(key)
            if seen is None or revision > seen[0]:
                seen = (revision, {}, parse_ms(r["conversion_time"]))
                self._splits[key] = seen
            elif revision < seen[0]:
                return
            touch = Touch(r["touchpoint_id"], r["channel"], r["campaign_id"], parse_ms(r["touch_time"]))
            seen[1][r["position"]] = (touch, r["amount_minor"])
        elif kind == "final":
            touch = Touch(r["touchpoint_id"], r["channel"], r["campaign_id"], parse_ms(r["touch_time"]))
            self._finals[(r["user_id"], r["touchpoint_id"])] = (touch, r["amount_minor"])
        elif kind == "unattributed":
            key = (r["user_id"], r["conversion_id"])
            self._unattributed[key] = max(r["revision"], self._unattributed.get(key, -1))

    def finish(self, end_ms: int | None) -> Journeys:
        """``end_ms``: the event time the log had certainly reached (the watermark before the end-of-input
        flush); a touchpoint whose window was still open then is censored. None: nothing is censored."""
        out = Journeys(end_ms=end_ms)
        first_credit: dict[tuple[str, str], int] = {}
        for (user, conversion), (_, shares, time_ms) in self._splits.items():
            touches = tuple(shares[p][0] for p in sorted(shares))
            out.converted.append(ConvertedJourney(user, conversion, touches,
                                                  sum(a for _, a in shares.values()), time_ms))
            for t in touches:
                key = (user, t.touchpoint_id)
                if key not in first_credit or time_ms < first_credit[key]:
                    first_credit[key] = time_ms
        out.unattributed_conversions = sum(1 for key in self._unattributed if key not in self._splits)
        uncredited: dict[str, list[Touch]] = defaultdict(list)
        for (user, tid), (touch, total) in self._finals.items():
            credit = first_credit.get((user, tid))
            out.outcomes.append(TouchOutcome(user, touch, total, credit))
            if credit is None:
                uncredited[user].append(touch)
        for user in sorted(uncredited):
            for segment in self._segments(uncredited[user]):
                # a journey with a touch whose window was still open at the end may yet convert: censored
                still_open = end_ms is not None and segment[-1].time_ms + self.window_ms >= end_ms
                (out.censored if still_open else out.lapsed).append(LapsedJourney(user, segment))
        return out.sort()

    def _segments(self, touches: list[Touch]) -> Iterator[tuple[Touch, ...]]:
        touches = sorted(touches, key=lambda t: (t.time_ms, t.touchpoint_id))
        segment: list[Touch] = []
        for t in touches:
            if segment and (t.time_ms - segment[0].time_ms > self.window_ms or len(segment) >= self.max_length):
                yield tuple(segment)
                segment = []
            segment.append(t)
        if segment:
            yield tuple(segment)
