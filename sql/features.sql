-- features: Adobe's 14 CMLE features for every profile, as of the cutoff $cutoff.
-- grain: one row per profile (userId), from $profiles_table.
-- cutoff: only events strictly before $cutoff are read for features.
-- horizon: subscriptionOccurred = 1 when web.formFilledOut happens in ($cutoff, $cutoff + $horizon_days days].
-- Recency features are read off a marker row at the cutoff, so TIME_BETWEEN_PREVIOUS_MATCH gives
-- "minutes since the last match before the cutoff", and NULL when there was none (never 0).
WITH profiles AS (
    SELECT DISTINCT _$tenant_id.userid AS userId
    FROM $profiles_table
),

history AS (
    SELECT _$tenant_id.userid AS userId, eventType, timestamp
    FROM $events_table
    WHERE timestamp < TIMESTAMP '$cutoff'
),

timeline AS (
    SELECT userId, eventType, timestamp FROM history
    UNION ALL
    SELECT userId, 'cutoff' AS eventType, TIMESTAMP '$cutoff' AS timestamp FROM profiles
),

cumulative AS (
    SELECT
        userId,
        eventType,
        SUM(CASE WHEN eventType = 'directMarketing.emailSent' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS emailsReceived,
        SUM(CASE WHEN eventType = 'directMarketing.emailOpened' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS emailsOpened,
        SUM(CASE WHEN eventType = 'directMarketing.emailClicked' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS emailsClicked,
        SUM(CASE WHEN eventType = 'commerce.productViews' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS productsViewed,
        SUM(CASE WHEN eventType = 'decisioning.propositionInteract' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS propositionInteracts,
        SUM(CASE WHEN eventType = 'decisioning.propositionDismiss' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS propositionDismissed,
        SUM(CASE WHEN eventType = 'web.webinteraction.linkClicks' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS webLinkClicks,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'directMarketing.emailSent', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_emailSent,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'directMarketing.emailOpened', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_emailOpened,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'directMarketing.emailClicked', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_emailClick,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'commerce.productViews', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_productView,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'decisioning.propositionInteract', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_propositionInteract,
        -- Adobe's notebooks match 'propositionDismiss' here, so the feature is always NULL; fixed.
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'decisioning.propositionDismiss', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_propositionDismiss,
        TIME_BETWEEN_PREVIOUS_MATCH(timestamp, eventType = 'web.webinteraction.linkClicks', 'minutes')
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS minutes_since_linkClick,
        SUM(CASE WHEN eventType = 'web.formFilledOut' THEN 1 ELSE 0 END)
            OVER (PARTITION BY userId ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS conversionsBeforeCutoff
    FROM timeline
),

at_cutoff AS (
    SELECT * FROM cumulative WHERE eventType = 'cutoff'
),

converted_in_horizon AS (
    SELECT _$tenant_id.userid AS userId, COUNT(*) AS conversions
    FROM $events_table
    WHERE eventType = 'web.formFilledOut'
      AND timestamp > TIMESTAMP '$cutoff'
      AND timestamp <= TIMESTAMP '$cutoff' + INTERVAL $horizon_days DAYS
    GROUP BY _$tenant_id.userid
)

SELECT
    c.userId,
    TIMESTAMP '$cutoff' AS cutoff,
    c.emailsReceived,
    c.emailsOpened,
    c.emailsClicked,
    c.productsViewed,
    c.propositionInteracts,
    c.propositionDismissed,
    c.webLinkClicks,
    c.minutes_since_emailSent,
    c.minutes_since_emailOpened,
    c.minutes_since_emailClick,
    c.minutes_since_productView,
    c.minutes_since_propositionInteract,
    c.minutes_since_propositionDismiss,
    c.minutes_since_linkClick,
    CASE WHEN c.conversionsBeforeCutoff > 0 THEN 1 ELSE 0 END AS convertedBeforeCutoff,
    CASE WHEN h.conversions > 0 THEN 1 ELSE 0 END AS subscriptionOccurred
FROM at_cutoff AS c
LEFT JOIN converted_in_horizon AS h ON c.userId = h.userId
