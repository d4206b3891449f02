"""Delayed rewards in Gymnasium terms: a wrapper that publishes each step as a touchpoint."""

from pipeline.gym.wrapper import DelayedRewardWrapper

__all__ = ["DelayedRewardWrapper"]
