"""A log of the market under a uniformly random policy: what the evaluation scores attribution models on.

Every (segment, channel) arm gets the same share of impressions, so an agent fitted on any model's rewards
sees every arm, and carry-over fires as often as random play makes it (display then search for one user).
Several campaigns (each its own users, as the demo's agents are) play side by side at the demo's pace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.events.types import Event, Touchpoint
from pipeline.market.env import AdMarketEnv, Truth
from pipeline.market.market import CHANNELS, Market, MarketSpec
from pipeline.units import DAY_MS


@dataclass
class MarketLog:
    events: list[Event] = field(default_factory=list)  # in event-time order
    truth: dict[str, Truth] = field(default_factory=dict)  # conversion id → its true credit


def exploration_log(spec: MarketSpec, start_ms: int, days: int, campaigns: int, impressions_per_hour: int
                    ) -> MarketLog:
    """``campaigns`` environments (streams 0..n-1 of the spec's seed), each showing ``impressions_per_hour``
    ads on uniformly random channels for ``days``; conversions due after the last impression are kept, so every
    caused conversion is in the log."""
    log = MarketLog()
    rng = np.random.default_rng([spec.seed, 1_000_003])
    for k in range(campaigns):
        name = f"explore-{k + 1}"
        env = AdMarketEnv(Market(spec, stream=k), name, start_ms, impressions_per_hour)
        obs, _ = env.reset()
        n = 0
        for _hour in range(days * 24):
            for _ in range(impressions_per_hour):
                action = int(rng.integers(len(CHANNELS)))
                state = obs.tolist()
                obs, reward, _t, _tr, info = env.step(action)
                n += 1
                log.events.append(Touchpoint(f"{name}-t{n}", f"{name}-e{n // impressions_per_hour}", info["user_id"],
                                             name, info["channel"], int(info["timestamp_ms"]), reward, "banner",
                                             state, action))
        log.events.extend(env.due_conversions(start_ms + days * DAY_MS + int(spec.max_delay_days * DAY_MS) + 1))
        log.truth.update(env.truth)
    log.events.sort(key=lambda e: (e.timestamp_ms, 0 if isinstance(e, Touchpoint) else 1))
    return log
