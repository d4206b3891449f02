"""A TorchRL trainer on the pipeline's corrected rewards: prioritized replay of final experiences.

The buffer hands TorchRL what it works with in a few lines: ``sample(..., tensors=True)`` gives torch tensors
(zero-copy), a ``TensorDict`` wraps them, a TorchRL ``MLP`` estimates each (segment, channel) value, and the
per-row |error| goes back as the experience's priority. Importance weights come with the batch (β annealed
toward 1 over the run). Rewards are the *final* attributed amounts: what the ad's conversions were worth.

Needs torch and torchrl (`pip install torch torchrl`), a broker and a worker on the same topics
(`rewardstream kafka start`, `rewardstream worker`). Run: python examples/torchrl_trainer.py [days]
"""

import sys
import time

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.modules import MLP

from pipeline.gym import DelayedRewardWrapper
from pipeline.market import CHANNELS, SEGMENTS, AdMarketEnv, Market, MarketSpec
from pipeline.producers import TouchpointProducer
from pipeline.replay import Priorities, ReplayBuffer
from pipeline.settings import Settings

DAYS = int(sys.argv[1]) if len(sys.argv) > 1 else 14
BATCH = 256


def sample(buffer: ReplayBuffer, to_action: torch.Tensor) -> TensorDict:
    """One prioritized batch as a TensorDict."""
    b = buffer.sample(BATCH, tensors=True)
    return TensorDict({"observation": b["states"], "action": to_action[b["channel"].long()],
                       "reward": b["attributed_reward"].float(), "weights": b["weights"].float(),
                       "index": b["index"]}, batch_size=[BATCH])


def main() -> None:
    torch.manual_seed(0)
    settings = Settings.load()
    spec = MarketSpec(seed=3)
    env = AdMarketEnv(Market(spec), "torchrl-trainer", start_ms=1_780_272_000_000, impressions_per_hour=30)
    producer = TouchpointProducer(settings)
    buffer = ReplayBuffer(settings, group=f"torchrl-{time.time_ns()}", capacity=200_000, prioritized=True,
                          final_only=True, priorities=Priorities(alpha=0.6, beta=0.4, beta_anneal_draws=20 * DAYS),
                          seed=0).start()
    wrapped = DelayedRewardWrapper(env, producer, buffer)
    q = MLP(in_features=len(SEGMENTS), out_features=len(CHANNELS), num_cells=[32])
    optimizer = torch.optim.Adam(q.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    for episode in range(1, DAYS * 24 + 1):
        obs, _info = wrapped.reset()
        done = False
        while not done:
            if rng.random() < 0.2:
                action = int(rng.integers(len(CHANNELS)))
            else:
                with torch.no_grad():
                    action = int(q(torch.as_tensor(obs, dtype=torch.float32)).argmax())
            obs, _click, _term, done, info = wrapped.step(action)
            for conversion in env.due_conversions(info["timestamp_ms"]):
                producer.send(conversion)
        if episode % 24:
            continue
        producer.flush()
        buffer.wait_until_caught_up(timeout=30, settle=1.0)
        try:
            to_action = torch.tensor([CHANNELS.index(c) for c in buffer.channel_names])
            losses = []
            for _ in range(20):
                td = sample(buffer, to_action)
                predicted = q(td["observation"]).gather(1, td["action"].unsqueeze(1)).squeeze(1)
                error = td["reward"] - predicted
                loss = (td["weights"] * error**2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                buffer.update_priorities(td["index"].numpy(), error.detach().abs().numpy())
                losses.append(float(loss))
        except LookupError:
            print(f"day {episode // 24:>3}: no final experiences yet ({len(buffer):,} pending)")
            continue
        with torch.no_grad():
            policy = q(torch.eye(len(SEGMENTS))).argmax(1).numpy()
        print(f"day {episode // 24:>3}: 20 prioritized batches of {BATCH} final experiences, weighted loss "
              f"{np.mean(losses):8.2f}, beta {buffer.beta:.2f}; policy value per 1,000 impressions "
              f"{spec.policy_value(policy):,.0f} (oracle {spec.policy_value(spec.oracle_policy()):,.0f})")
    wrapped.close()
    stats = buffer.statistics()
    buffer.stop()
    producer.close()
    print(f"buffer: {stats['size']:,} experiences, {stats['final']:,} final, "
          f"{stats['conversions_attributed']:,} conversions attributed")


if __name__ == "__main__":
    main()
