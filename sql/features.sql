-- features: model inputs per profile at each prediction time T in $cutoffs (no label: see feature_table.sql).
-- grain: one row per (profile, cutoff); $cutoffs is a VALUES list of (TIMESTAMP 'T', 'split').
-- cutoff: only events strictly before T are read for features.
-- Counts cover all history and the last 7 and 28 days. Recency is minutes from the last such event to T,
-- and stays NULL when there was none (never 0). Adobe's 14 CMLE features are among these, with the
-- notebooks' 'propositionDismiss' match fixed to 'decisioning.propositionDismiss'.
-- $scope limits the profiles: TRUE for all, or a predicate on the tenant userid (incremental rescoring).
WITH cutoffs AS (
    SELECT cutoff, split FROM (VALUES $cutoffs) AS c(cutoff, split)
),

profiles AS (
    SELECT
        _$tenant_id.userid AS userId,
        loyalty.tier AS loyaltyTier,
        loyalty.points AS loyaltyPoints,
        loyalty.joinDate AS loyaltyJoinDate,
        person.birthYear AS birthYear
    FROM $profiles_table
    WHERE $scope
),

history AS (
    SELECT
        e._$tenant_id.userid AS userId,
        e.eventType,
        c.cutoff,
        (unix_micros(c.cutoff) - unix_micros(e.timestamp)) / 60000000.0 AS minutesBefore
    FROM $events_table AS e
    JOIN cutoffs AS c ON e.timestamp < c.cutoff
    WHERE $scope
),

event_features AS (
    SELECT
        userId,
        cutoff,
        SUM(CASE WHEN eventType = 'directMarketing.emailSent' THEN 1 ELSE 0 END) AS emailsReceived,
        SUM(CASE WHEN eventType = 'directMarketing.emailSent' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS emailsReceived_7d,
        SUM(CASE WHEN eventType = 'directMarketing.emailSent' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS emailsReceived_28d,
        SUM(CASE WHEN eventType = 'directMarketing.emailOpened' THEN 1 ELSE 0 END) AS emailsOpened,
        SUM(CASE WHEN eventType = 'directMarketing.emailOpened' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS emailsOpened_7d,
        SUM(CASE WHEN eventType = 'directMarketing.emailOpened' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS emailsOpened_28d,
        SUM(CASE WHEN eventType = 'directMarketing.emailClicked' THEN 1 ELSE 0 END) AS emailsClicked,
        SUM(CASE WHEN eventType = 'directMarketing.emailClicked' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS emailsClicked_7d,
        SUM(CASE WHEN eventType = 'directMarketing.emailClicked' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS emailsClicked_28d,
        SUM(CASE WHEN eventType = 'web.webpagedetails.pageViews' THEN 1 ELSE 0 END) AS pageViews,
        SUM(CASE WHEN eventType = 'web.webpagedetails.pageViews' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS pageViews_7d,
        SUM(CASE WHEN eventType = 'web.webpagedetails.pageViews' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS pageViews_28d,
        SUM(CASE WHEN eventType = 'commerce.productViews' THEN 1 ELSE 0 END) AS productsViewed,
        SUM(CASE WHEN eventType = 'commerce.productViews' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS productsViewed_7d,
        SUM(CASE WHEN eventType = 'commerce.productViews' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS productsViewed_28d,
        SUM(CASE WHEN eventType = 'commerce.purchases' THEN 1 ELSE 0 END) AS purchases,
        SUM(CASE WHEN eventType = 'commerce.purchases' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS purchases_7d,
        SUM(CASE WHEN eventType = 'commerce.purchases' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS purchases_28d,
        SUM(CASE WHEN eventType = 'decisioning.propositionDisplay' THEN 1 ELSE 0 END) AS propositionDisplays,
        SUM(CASE WHEN eventType = 'decisioning.propositionDisplay' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS propositionDisplays_7d,
        SUM(CASE WHEN eventType = 'decisioning.propositionDisplay' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS propositionDisplays_28d,
        SUM(CASE WHEN eventType = 'decisioning.propositionInteract' THEN 1 ELSE 0 END) AS propositionInteracts,
        SUM(CASE WHEN eventType = 'decisioning.propositionInteract' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS propositionInteracts_7d,
        SUM(CASE WHEN eventType = 'decisioning.propositionInteract' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS propositionInteracts_28d,
        SUM(CASE WHEN eventType = 'decisioning.propositionDismiss' THEN 1 ELSE 0 END) AS propositionDismissed,
        SUM(CASE WHEN eventType = 'decisioning.propositionDismiss' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS propositionDismissed_7d,
        SUM(CASE WHEN eventType = 'decisioning.propositionDismiss' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS propositionDismissed_28d,
        SUM(CASE WHEN eventType = 'web.webinteraction.linkClicks' THEN 1 ELSE 0 END) AS webLinkClicks,
        SUM(CASE WHEN eventType = 'web.webinteraction.linkClicks' AND minutesBefore <= 7 * 1440 THEN 1 ELSE 0 END)
            AS webLinkClicks_7d,
        SUM(CASE WHEN eventType = 'web.webinteraction.linkClicks' AND minutesBefore <= 28 * 1440 THEN 1 ELSE 0 END)
            AS webLinkClicks_28d,
        MIN(CASE WHEN eventType = 'directMarketing.emailSent' THEN minutesBefore END) AS minutes_since_emailSent,
        MIN(CASE WHEN eventType = 'directMarketing.emailOpened' THEN minutesBefore END) AS minutes_since_emailOpened,
        MIN(CASE WHEN eventType = 'directMarketing.emailClicked' THEN minutesBefore END) AS minutes_since_emailClick,
        MIN(CASE WHEN eventType = 'commerce.productViews' THEN minutesBefore END) AS minutes_since_productView,
        MIN(CASE WHEN eventType = 'decisioning.propositionInteract' THEN minutesBefore END) AS minutes_since_propositionInteract,
        MIN(CASE WHEN eventType = 'decisioning.propositionDismiss' THEN minutesBefore END) AS minutes_since_propositionDismiss,
        MIN(CASE WHEN eventType = 'web.webinteraction.linkClicks' THEN minutesBefore END) AS minutes_since_linkClick,
        MIN(CASE WHEN eventType = 'web.webpagedetails.pageViews' THEN minutesBefore END) AS minutes_since_pageView,
        MIN(CASE WHEN eventType = 'commerce.purchases' THEN minutesBefore END) AS minutes_since_purchase,
        SUM(CASE WHEN eventType = 'web.formFilledOut' THEN 1 ELSE 0 END) AS conversionsBeforeCutoff
    FROM history
    GROUP BY userId, cutoff
)

SELECT
    p.userId,
    c.cutoff,
    c.split,
    COALESCE(f.emailsReceived, 0) AS emailsReceived,
    COALESCE(f.emailsReceived_7d, 0) AS emailsReceived_7d,
    COALESCE(f.emailsReceived_28d, 0) AS emailsReceived_28d,
    COALESCE(f.emailsOpened, 0) AS emailsOpened,
    COALESCE(f.emailsOpened_7d, 0) AS emailsOpened_7d,
    COALESCE(f.emailsOpened_28d, 0) AS emailsOpened_28d,
    COALESCE(f.emailsClicked, 0) AS emailsClicked,
    COALESCE(f.emailsClicked_7d, 0) AS emailsClicked_7d,
    COALESCE(f.emailsClicked_28d, 0) AS emailsClicked_28d,
    COALESCE(f.pageViews, 0) AS pageViews,
    COALESCE(f.pageViews_7d, 0) AS pageViews_7d,
    COALESCE(f.pageViews_28d, 0) AS pageViews_28d,
    COALESCE(f.productsViewed, 0) AS productsViewed,
    COALESCE(f.productsViewed_7d, 0) AS productsViewed_7d,
    COALESCE(f.productsViewed_28d, 0) AS productsViewed_28d,
    COALESCE(f.purchases, 0) AS purchases,
    COALESCE(f.purchases_7d, 0) AS purchases_7d,
    COALESCE(f.purchases_28d, 0) AS purchases_28d,
    COALESCE(f.propositionDisplays, 0) AS propositionDisplays,
    COALESCE(f.propositionDisplays_7d, 0) AS propositionDisplays_7d,
    COALESCE(f.propositionDisplays_28d, 0) AS propositionDisplays_28d,
    COALESCE(f.propositionInteracts, 0) AS propositionInteracts,
    COALESCE(f.propositionInteracts_7d, 0) AS propositionInteracts_7d,
    COALESCE(f.propositionInteracts_28d, 0) AS propositionInteracts_28d,
    COALESCE(f.propositionDismissed, 0) AS propositionDismissed,
    COALESCE(f.propositionDismissed_7d, 0) AS propositionDismissed_7d,
    COALESCE(f.propositionDismissed_28d, 0) AS propositionDismissed_28d,
    COALESCE(f.webLinkClicks, 0) AS webLinkClicks,
    COALESCE(f.webLinkClicks_7d, 0) AS webLinkClicks_7d,
    COALESCE(f.webLinkClicks_28d, 0) AS webLinkClicks_28d,
    f.minutes_since_emailSent,
    f.minutes_since_emailOpened,
    f.minutes_since_emailClick,
    f.minutes_since_productView,
    f.minutes_since_propositionInteract,
    f.minutes_since_propositionDismiss,
    f.minutes_since_linkClick,
    f.minutes_since_pageView,
    f.minutes_since_purchase,
    CASE WHEN f.emailsReceived_28d > 0 THEN f.emailsOpened_28d / f.emailsReceived_28d END AS emailOpenRate_28d,
    CASE WHEN f.emailsOpened_28d > 0 THEN f.emailsClicked_28d / f.emailsOpened_28d END AS emailClickRate_28d,
    CASE p.loyaltyTier
        WHEN 'member' THEN 0 WHEN 'silver' THEN 1 WHEN 'gold' THEN 2 WHEN 'platinum' THEN 3 WHEN 'diamond' THEN 4
    END AS loyaltyTierRank,
    p.loyaltyPoints,
    year(c.cutoff) - p.birthYear AS age,
    datediff(c.cutoff, p.loyaltyJoinDate) AS tenureDays,
    CASE WHEN f.conversionsBeforeCutoff > 0 THEN 1 ELSE 0 END AS convertedBeforeCutoff
FROM profiles AS p
CROSS JOIN cutoffs AS c
LEFT JOIN event_features AS f ON f.userId = p.userId AND f.cutoff = c.cutoff
