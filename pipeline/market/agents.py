"""Learners for the market: Gaussian Thompson sampling per (segment, channel), in numpy.

The agent is refitted from data the pipeline hands it (segment, channel, reward per experience): the
click agent from immediate rewards, the attribution agent from final attributed rewards. Everything else
(which reward, which experiences) is the caller's choice, so both agents share one learner.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


class ThompsonAgent:
    def __init__(self, n_segments: int, n_actions: int, seed: int, prior_count: float = 2.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = np.zeros((n_segments, n_actions))
        self.mean = np.zeros((n_segments, n_actions))
        self.var = np.ones((n_segments, n_actions))
        self.prior_count = prior_count

    def fit(self, segments: IntArray, actions: IntArray, rewards: npt.NDArray[np.float64]) -> None:
        """Posterior from all the data given: per arm, the mean reward and its variance."""
        shape = self.n.shape
        flat = segments * shape[1] + actions
        size = shape[0] * shape[1]
        n = np.bincount(flat, minlength=size).astype(np.float64)
        total = np.bincount(flat, weights=rewards, minlength=size)
        total_sq = np.bincount(flat, weights=rewards * rewards, minlength=size)
        prior_mean = float(rewards.mean()) if len(rewards) else 0.0
        prior_var = float(rewards.var()) if len(rewards) > 1 else 1.0
        k = self.prior_count
        mean = (total + k * prior_mean) / (n + k)
        var = (total_sq + k * (prior_var + prior_mean ** 2)) / (n + k) - mean ** 2
        self.n, self.mean = n.reshape(shape), mean.reshape(shape)
        self.var = np.maximum(var, 1e-9).reshape(shape)

    def act(self, segment: int) -> int:
        """Thompson draw: each arm's mean sampled from N(mean, var / (n + prior)), the best one played."""
        draw = self.rng.normal(self.mean[segment], np.sqrt(self.var[segment] / (self.n[segment] + self.prior_count)))
        return int(np.argmax(draw))

    def greedy_policy(self) -> IntArray:
        return np.asarray(np.argmax(self.mean, axis=1), dtype=np.int64)
