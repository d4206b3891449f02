"""Delayed rewards in Gymnasium terms: a wrapper that publishes each step as a touchpoint.

May import: ``pipeline.events``, ``pipeline.producers``, ``pipeline.replay``."""

from pipeline.gym.wrapper import DelayedRewardWrapper

__all__ = ["DelayedRewardWrapper"]
