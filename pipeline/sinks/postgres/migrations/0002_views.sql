-- The common questions. Money stays in minor units of base_currency (exact); divide by the currency's minor
-- unit (100 for USD, EUR; 1 for JPY) to show it.

-- Attributed value per model, channel, campaign and day of the conversion (refunds included, negative).
CREATE VIEW attributed_value_daily AS
SELECT model, channel, campaign_id, (conversion_time AT TIME ZONE 'UTC')::date AS day, base_currency,
       sum(amount_minor) AS value_minor, count(DISTINCT (user_id, conversion_id)) AS conversions,
       count(*) AS shares
FROM reward_current
GROUP BY model, channel, campaign_id, day, base_currency;

-- Attributed value per model and channel over all days.
CREATE VIEW attributed_value_by_channel AS
SELECT model, channel, base_currency, sum(amount_minor) AS value_minor,
       count(DISTINCT (user_id, conversion_id)) AS conversions
FROM reward_current
GROUP BY model, channel, base_currency;

-- Conversions that paid nobody, and why; one that a later split paid is no longer listed.
CREATE VIEW unattributed_conversions AS
SELECT u.*
FROM conversion_unattributed u
WHERE NOT EXISTS (SELECT 1 FROM reward_current c
                  WHERE c.user_id = u.user_id AND c.conversion_id = u.conversion_id);

-- Touchpoints the ledger has seen whose window has not closed (no final yet), with what they hold so far.
CREATE VIEW open_touchpoints AS
SELECT s.user_id, s.touchpoint_id, s.episode_id, s.campaign_id, s.channel, s.touch_time,
       coalesce((SELECT sum(c.amount_minor) FROM reward_current c
                 WHERE c.user_id = s.user_id AND c.touchpoint_id = s.touchpoint_id), 0) AS attributed_minor
FROM touchpoint_seen s
WHERE NOT EXISTS (SELECT 1 FROM touchpoint_final f
                  WHERE f.user_id = s.user_id AND f.touchpoint_id = s.touchpoint_id);
