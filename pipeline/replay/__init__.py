"""The trainer's end: attributed rewards joined to the experiences they correct, sampled as numpy batches."""

from pipeline.replay.buffer import ReplayBuffer
from pipeline.replay.experiences import ExperienceTable, Priorities, fold_rewards

__all__ = ["ExperienceTable", "Priorities", "ReplayBuffer", "fold_rewards"]
