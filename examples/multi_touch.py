"""The design document's "Advanced Multi-Touch Journey" example; only the import lines differ.

Needs a broker and a worker on the same topics: `rewardstream kafka start` and `rewardstream worker`."""

import asyncio

from pipeline import ConversionEvent, DelayedRewardConfig, DelayedRewardSystem


async def multi_touch_example():
    delayed_reward_system = DelayedRewardSystem(DelayedRewardConfig())
    
    user_id = "user_journey_demo"
    
    # Simulate multi-touch customer journey
    touchpoints = []
    
    # Touch 1: Search ad (awareness)
    tp1 = await delayed_reward_system.store_pending_reward(
        episode_id="episode_search",
        user_id=user_id,
        campaign_id="search_campaign",
        action={"channel": "search", "budget": 50},
        state={"funnel_stage": "awareness"},
        immediate_reward=1.0,
        channel="search"
    )
    touchpoints.append(tp1)
    
    # Touch 2: Display retargeting (consideration)  
    tp2 = await delayed_reward_system.store_pending_reward(
        episode_id="episode_display",
        user_id=user_id,
        campaign_id="retargeting_campaign", 
        action={"channel": "display", "budget": 30},
        state={"funnel_stage": "consideration"},
        immediate_reward=0.5,
        channel="display"
    )
    touchpoints.append(tp2)
    
    # Touch 3: Email (conversion)
    tp3 = await delayed_reward_system.store_pending_reward(
        episode_id="episode_email",
        user_id=user_id,
        campaign_id="email_campaign",
        action={"channel": "email", "budget": 10},
        state={"funnel_stage": "decision"},
        immediate_reward=0.2,
        channel="email"
    )
    touchpoints.append(tp3)
    
    # Conversion happens
    attribution_rewards = await delayed_reward_system.trigger_attribution(
        user_id=user_id,
        conversion_event=ConversionEvent.PURCHASE,
        conversion_value=200.0
    )
    
    print("Attribution Results:")
    for tp_id, reward in attribution_rewards.items():
        print(f"  Touchpoint {tp_id[:8]}: ${reward:.2f}")
    
    # Get user journey
    journey = delayed_reward_system.get_user_journey(user_id)
    print(f"\nComplete journey: {len(journey)} touchpoints")
    for i, tp in enumerate(journey):
        print(f"  {i+1}. {tp.channel} campaign (${tp.immediate_reward} → ${attribution_rewards.get(tp.touchpoint_id, 0):.2f})")

asyncio.run(multi_touch_example())
