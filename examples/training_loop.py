"""A training loop with delayed rewards, in Gymnasium terms.

Every step of the (simulated) ad market is published as a touchpoint by DelayedRewardWrapper; conversions
arrive days later and the worker attributes them; every N episodes the trainer samples the ReplayBuffer's
*final* experiences (rewards that will not change again) and updates its value estimates.

Needs a broker and a worker on the same topics: `rewardstream kafka start` and `rewardstream worker`
(REWARDSTREAM_* variables name the broker and topics). Run: python examples/training_loop.py [days]
"""

import sys
import time

import numpy as np

from pipeline.gym import DelayedRewardWrapper
from pipeline.market import CHANNELS, SEGMENTS, AdMarketEnv, Market, MarketSpec
from pipeline.producers import TouchpointProducer
from pipeline.replay import ReplayBuffer
from pipeline.settings import Settings

DAYS = int(sys.argv[1]) if len(sys.argv) > 1 else 14
REPLAY_EVERY = 24  # episodes (one episode = one simulated hour)
BATCH = 256


def main() -> None:
    settings = Settings.load()
    spec = MarketSpec(seed=3)
    env = AdMarketEnv(Market(spec), "training-loop", start_ms=1_780_272_000_000, impressions_per_hour=30)
    producer = TouchpointProducer(settings)
    buffer = ReplayBuffer(settings, group=f"training-loop-{time.time_ns()}", capacity=200_000, seed=0).start()
    wrapped = DelayedRewardWrapper(env, producer, buffer)
    rng = np.random.default_rng(0)
    value_sum = np.zeros((len(SEGMENTS), len(CHANNELS)))
    value_n = np.zeros((len(SEGMENTS), len(CHANNELS)))
    updates_seen = 0
    for episode in range(1, DAYS * 24 + 1):
        obs, info = wrapped.reset()
        updates_seen += len(info.get("delayed_rewards", []))
        done = False
        while not done:
            segment = int(np.argmax(obs))
            if rng.random() < 0.2 or value_n[segment].min() == 0:  # explore
                action = int(rng.integers(len(CHANNELS)))
            else:
                action = int(np.argmax(value_sum[segment] / value_n[segment]))
            obs, _click, _term, done, info = wrapped.step(action)
            for conversion in env.due_conversions(info["timestamp_ms"]):
                producer.send(conversion)
            updates_seen += len(info.get("delayed_rewards", []))
        if episode % REPLAY_EVERY == 0:
            producer.flush()
            buffer.wait_until_caught_up(timeout=30, settle=1.0)
            try:
                batch = buffer.sample(BATCH, final_only=True)
            except LookupError:
                print(f"day {episode // 24:>3}: no final experiences yet ({len(buffer):,} pending)")
                continue
            to_action = np.array([CHANNELS.index(c) for c in buffer.channel_names])
            segments = np.argmax(batch["states"], axis=1)
            actions = to_action[batch["channel"]]
            np.add.at(value_sum, (segments, actions), batch["attributed_reward"])
            np.add.at(value_n, (segments, actions), 1)
            policy = np.argmax(value_sum / np.maximum(value_n, 1), axis=1)
            print(f"day {episode // 24:>3}: trained on {BATCH} final experiences "
                  f"(mean corrected reward {batch['attributed_reward'].mean():6.2f} vs original "
                  f"{batch['original_reward'].mean():4.2f}); delayed updates reported in info: {updates_seen:,}; "
                  f"policy value per 1,000 impressions {spec.policy_value(policy):,.0f} "
                  f"(oracle {spec.policy_value(spec.oracle_policy()):,.0f})")
    wrapped.close()
    stats = buffer.statistics()
    buffer.stop()
    producer.close()
    print(f"buffer: {stats['size']:,} experiences, {stats['final']:,} final, "
          f"{stats['conversions_attributed']:,} conversions attributed")


if __name__ == "__main__":
    main()
