-- feature_table_adobe: Adobe's notebook training rows (split 'train', see adobe_features.sql) next to the
-- same temporal holdout as feature_table.sql (split 'test', at T2, label in (T2, T2 + $horizon_days days]),
-- so the leaky design's reported AUC can be compared with what it achieves on honest rows.
-- The features subqueries are sql/adobe_features.sql and sql/features.sql, inlined before submission.
CREATE TABLE $table AS
WITH adobe AS (
$adobe_features
),

features AS (
$features
),

converted_in_horizon AS (
$labels
)

SELECT
    userId, timestamp AS cutoff, 'train' AS split, emailsReceived, emailsOpened, emailsClicked, productsViewed,
    propositionInteracts, propositionDismissed, webLinkClicks, minutes_since_emailSent, minutes_since_emailOpened,
    minutes_since_emailClick, minutes_since_productView, minutes_since_propositionInteract,
    minutes_since_propositionDismiss, minutes_since_linkClick, 0 AS convertedBeforeCutoff, $horizon_days AS horizonDays,
    CASE WHEN subscriptionOccurred > 0 THEN 1 ELSE 0 END AS subscriptionOccurred
FROM adobe

UNION ALL

SELECT
    f.userId, f.cutoff, f.split, f.emailsReceived, f.emailsOpened, f.emailsClicked, f.productsViewed,
    f.propositionInteracts, f.propositionDismissed, f.webLinkClicks, f.minutes_since_emailSent,
    f.minutes_since_emailOpened, f.minutes_since_emailClick, f.minutes_since_productView,
    f.minutes_since_propositionInteract, f.minutes_since_propositionDismiss, f.minutes_since_linkClick,
    f.convertedBeforeCutoff, $horizon_days AS horizonDays, CASE WHEN h.conversions > 0 THEN 1 ELSE 0 END AS subscriptionOccurred
FROM features AS f
LEFT JOIN converted_in_horizon AS h ON h.userId = f.userId AND h.cutoff = f.cutoff
WHERE f.convertedBeforeCutoff = 0
