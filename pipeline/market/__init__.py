"""The demo's simulated ad market: hidden propensities, a Gymnasium environment, and a learner."""

from pipeline.market.agents import ThompsonAgent
from pipeline.market.env import AdMarketEnv
from pipeline.market.market import CHANNELS, SEGMENTS, Market, MarketSpec

__all__ = ["CHANNELS", "SEGMENTS", "AdMarketEnv", "Market", "MarketSpec", "ThompsonAgent"]
