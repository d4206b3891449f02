"""The demo's simulated ad market: hidden propensities and causal structure (organic conversions, harvesting,
carry-over) with each conversion's true credit, a Gymnasium environment, an exploration log, and a learner.
Pure: numpy and the event types; no Kafka, no wall clock.

May import: ``pipeline.events``, ``pipeline.units``."""

from pipeline.market.agents import ThompsonAgent
from pipeline.market.env import AdMarketEnv, Truth
from pipeline.market.market import CHANNELS, DEFAULT_MARKET, MARKETS, SEGMENTS, Market, MarketSpec

__all__ = ["CHANNELS", "DEFAULT_MARKET", "MARKETS", "SEGMENTS", "AdMarketEnv", "Market", "MarketSpec",
           "ThompsonAgent", "Truth"]
