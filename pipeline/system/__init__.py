"""The design document's Python API (``DelayedRewardSystem``) on top of the producers and the replay buffer.

May import: ``pipeline.events``, ``pipeline.kafka``, ``pipeline.local_servers``, ``pipeline.producers``,
``pipeline.replay``, ``pipeline.settings``, ``pipeline.sinks``, ``pipeline.units``."""

from pipeline.system.config import AttributionModel, ConversionEvent, DelayedRewardConfig
from pipeline.system.delayed_reward_system import DelayedRewardSystem

__all__ = ["AttributionModel", "ConversionEvent", "DelayedRewardConfig", "DelayedRewardSystem"]
