-- adobe_features: Adobe's CMLE training rows exactly as the notebooks build them (reference/cmle.md §2.3-2.4).
-- Kept only to measure what that design reports; it leaks, and the no_leakage check says so.
-- grain: one event row per profile. Positives are the row of the conversion event itself, negatives one
-- random event row of a profile that never converts. Features are cumulative up to and including that
-- row, and the label subscriptionOccurred counts conversions over the whole history, before or after it.
-- Fixed here: 'decisioning.propositionDismiss' (the notebooks match 'propositionDismiss', always NULL).
WITH adobe_events AS (
    -- the random draw of Adobe's "ORDER BY randn()", computed once per row
    SELECT _$tenant_id.userid AS userId, eventType, timestamp, randn() AS randomOrder
    FROM $events_table
),

cumulative AS (
    SELECT
        userId,
        eventType,
        timestamp,
        SUM(CASE WHEN eventType = 'web.formFilledOut' THEN 1 ELSE 0 END) OVER (PARTITION BY userId)
            AS subscriptionOccurred,
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
        row_number() OVER (PARTITION BY userId ORDER BY randomOrder) AS random_row_number_for_user
    FROM adobe_events
)

SELECT *
FROM cumulative
WHERE (subscriptionOccurred = 1 AND eventType = 'web.formFilledOut')
   OR (subscriptionOccurred = 0 AND random_row_number_for_user = 1)
