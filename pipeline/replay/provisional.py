"""Provisional rewards in the replay buffer: every experience has an expected reward from the moment its
touchpoint arrives (the delay model's estimate, ``pipeline.attribution.delay_model``), which falls as its event
time advances without a conversion crediting it, until attributed rewards replace it.

Estimates are kept apart from money: the attributed columns stay exact sums of attributed events; the
expected reward is a float computed when a batch is drawn, for the rows that have no attribution yet. The
buffer's event time is the newest touchpoint time it has seen (never the wall clock), so a replay gives the same
estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.attribution.delay_model import DelayModel, Key
from pipeline.money.currency import MINOR_UNITS


class RewardSource(IntEnum):
    """What a row's ``reward`` holds (a batch's ``reward_source`` column)."""

    PROVISIONAL = 0  # the delay model's expected reward: nothing has credited the touchpoint yet
    ATTRIBUTED = 1  # attributed rewards so far; more may come until final
    FINAL = 2  # the window has closed: the amount will not change (refunds dated later aside)

Feature = Callable[[Any], str]  # a touchpoint's state → the third key element (e.g. its segment)


class ProvisionalRewards:
    """Key codes per slot and the compiled curves of the current delay model."""

    def __init__(self, capacity: int) -> None:
        self.codes = np.zeros(capacity, dtype=np.int32)
        self.keys: list[Key] = []
        self._code_of: dict[Key, int] = {}
        self.model: DelayModel | None = None
        self.feature: Feature | None = None
        self.clock_ms = -(2**62)  # the newest touch time seen: the buffer's event time
        self._survival = np.ones((0, 1))
        self._amounts = np.zeros(0)
        self._compiled = 0  # keys compiled into the tables so far

    def key(self, channel: str, campaign: str, state: Any) -> Key:
        if self.feature is None:
            return (channel, campaign)
        return (channel, campaign, str(self.feature(state)))

    def code(self, key: Key) -> int:
        code = self._code_of.get(key)
        if code is None:
            code = self._code_of[key] = len(self.keys)
            self.keys.append(key)
        return code

    def observe(self, slot: int, key: Key, touch_ms: int) -> None:
        self.codes[slot] = self.code(key)
        if touch_ms > self.clock_ms:
            self.clock_ms = touch_ms

    def set_model(self, model: DelayModel | None, feature: Feature | None, rekey: Callable[[], None]) -> None:
        """A new model (and key feature); ``rekey`` recomputes every held row's key when the feature changes."""
        changed = feature is not self.feature
        self.model, self.feature = model, feature
        if changed:
            self.keys, self._code_of = [], {}
            rekey()
        self._compiled = 0
        self._survival, self._amounts = np.ones((0, 1)), np.zeros(0)

    def expected(self, slots: npt.NDArray[np.int64], touch_ms: npt.NDArray[np.int64] | npt.NDArray[np.float64]
                 ) -> npt.NDArray[np.float64]:
        """Expected credited amount (base currency units) of each row if it had no credit yet, at the buffer's
        event time."""
        if self.model is None or len(slots) == 0:
            return np.zeros(len(slots))
        if self._compiled < len(self.keys):
            self._survival, self._amounts = self.model.table(self.keys)
            self._compiled = len(self.keys)
        elapsed = np.maximum(self.clock_ms - touch_ms, 0.0)
        minor = self.model.expected_many(self._survival, self._amounts, self.codes[slots].astype(np.int64), elapsed)
        return minor * 10.0 ** -MINOR_UNITS.get(self.model.base_currency, 2)
