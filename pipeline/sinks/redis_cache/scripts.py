"""Lua run inside Redis, so that folding a fact into a touchpoint is atomic and idempotent whatever the order
and repetition of deliveries: a share replaces the conversion's earlier share only at a higher revision (the
rule of ``pipeline.events.revisions``), ``attributed_minor`` moves by the difference, a final closes the
touchpoint (out of its user's open set). Amounts stay strings: Redis adds them as 64-bit integers (Lua's
numbers are doubles)."""

from __future__ import annotations

# KEYS: touchpoint hash, user's open set. ARGV: user, kind, conversion, revision, amount_minor, currency,
# touch_time_ms, ttl, touchpoint_id, episode_id, campaign_id, channel. Returns 1 applied, 0 stale, -1 other user.
REWARD = """
local h = KEYS[1]
local owner = redis.call('HGET', h, 'user_id')
if owner and owner ~= ARGV[1] then return -1 end
if not owner then
  redis.call('HSET', h, 'user_id', ARGV[1], 'episode_id', ARGV[10], 'campaign_id', ARGV[11],
             'channel', ARGV[12], 'touch_time_ms', ARGV[7])
end
local applied = 1
local kind = ARGV[2]
if kind == 'final' then
  redis.call('HSET', h, 'final_minor', ARGV[5], 'currency', ARGV[6])
  redis.call('ZREM', KEYS[2], ARGV[9])
elseif kind ~= 'unattributed' then
  local field = 'p:' .. ARGV[3]
  local held = redis.call('HGET', h, field)
  if held then
    local sp = string.find(held, ' ', 1, true)
    if tonumber(ARGV[4]) <= tonumber(string.sub(held, 1, sp - 1)) then
      applied = 0
    else
      local old = string.sub(held, sp + 1)
      if old ~= '0' then  -- Redis refuses '-0' as an integer
        if string.sub(old, 1, 1) == '-' then old = string.sub(old, 2) else old = '-' .. old end
        redis.call('HINCRBY', h, 'attributed_minor', old)
      end
    end
  end
  if applied == 1 then
    redis.call('HSET', h, field, ARGV[4] .. ' ' .. ARGV[5], 'currency', ARGV[6])
    redis.call('HINCRBY', h, 'attributed_minor', ARGV[5])
  end
end
redis.call('EXPIRE', h, ARGV[8])
return applied
"""

# KEYS: touchpoint hash, user's open set. ARGV: user, touchpoint_id, touch_time_ms, ttl, then field/value pairs.
TOUCHPOINT = """
local h = KEYS[1]
local owner = redis.call('HGET', h, 'user_id')
if owner and owner ~= ARGV[1] then return -1 end
redis.call('HSET', h, 'user_id', ARGV[1], 'touch_time_ms', ARGV[3], unpack(ARGV, 5))
if redis.call('HEXISTS', h, 'final_minor') == 0 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('EXPIRE', h, ARGV[4])
return 1
"""
