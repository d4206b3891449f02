"""The trainer's end: attributed rewards joined to the experiences they correct, sampled as numpy batches.

May import: ``pipeline.attribution``, ``pipeline.events``, ``pipeline.kafka``, ``pipeline.money``,
``pipeline.settings``, ``pipeline.units``."""

from pipeline.replay.buffer import ReplayBuffer
from pipeline.replay.experiences import ExperienceTable, fold_rewards
from pipeline.replay.provisional import RewardSource
from pipeline.replay.samplers import Priorities

__all__ = ["ExperienceTable", "Priorities", "ReplayBuffer", "RewardSource", "fold_rewards"]
