"""The design document's "Basic Usage" example; only the import line differs.

Needs a broker and a worker on the same topics: `rewardstream kafka start` and `rewardstream worker`."""

import asyncio

from pipeline import ConversionEvent, DelayedRewardConfig, DelayedRewardSystem


async def basic_example():
    # Initialize system
    config = DelayedRewardConfig(attribution_window_days=7)
    delayed_reward_system = DelayedRewardSystem(config)
    
    # Store pending reward
    touchpoint_id = await delayed_reward_system.store_pending_reward(
        episode_id="episode_1",
        user_id="user_123",
        campaign_id="campaign_456",
        action={"budget": 100, "creative": "video"},
        state={"market_conditions": "high_competition"},
        immediate_reward=2.5,
        channel="search"
    )
    
    # Simulate conversion 2 days later
    await asyncio.sleep(2)  # In reality, this would be 2 days
    
    attribution_rewards = await delayed_reward_system.trigger_attribution(
        user_id="user_123",
        conversion_event=ConversionEvent.PURCHASE,
        conversion_value=150.0
    )
    
    print(f"Attributed ${attribution_rewards[touchpoint_id]:.2f} to touchpoint")

asyncio.run(basic_example())
