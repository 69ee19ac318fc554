-- feature_table_adobe: Adobe's notebook training rows (split 'train', see adobe_features.sql) next to the
-- same temporal holdout as feature_table.sql (split 'test', at T2, label in (T2, T2 + $horizon_days days]),
-- so the leaky design's reported AUC can be compared with what it achieves on honest rows. CMLE demo only.
-- The feature CTEs are generated from the model definition; sql/adobe_features.sql is inlined.
CREATE TABLE $table AS
WITH $feature_ctes,

adobe AS (
$adobe_features
),

goals_in_window AS (
$goals_in_window
)

SELECT
    userId AS profile_id, timestamp AS cutoff, 'train' AS split, emailsReceived, emailsOpened, emailsClicked,
    productsViewed, propositionInteracts, propositionDismissed, webLinkClicks, minutes_since_emailSent,
    minutes_since_emailOpened, minutes_since_emailClick, minutes_since_productView, minutes_since_propositionInteract,
    minutes_since_propositionDismiss, minutes_since_linkClick, 1 AS eligible, $horizon_days AS horizonDays,
    CASE WHEN subscriptionOccurred > 0 THEN 1 ELSE 0 END AS goal_occurred
FROM adobe

UNION ALL

SELECT
    f.profile_id, f.cutoff, f.split, f.emailsReceived, f.emailsOpened, f.emailsClicked, f.productsViewed,
    f.propositionInteracts, f.propositionDismissed, f.webLinkClicks, f.minutes_since_emailSent,
    f.minutes_since_emailOpened, f.minutes_since_emailClick, f.minutes_since_productView,
    f.minutes_since_propositionInteract, f.minutes_since_propositionDismiss, f.minutes_since_linkClick,
    f.eligible, $horizon_days AS horizonDays, CASE WHEN g.goals > 0 THEN 1 ELSE 0 END AS goal_occurred
FROM features AS f
LEFT JOIN goals_in_window AS g ON g.profile_id = f.profile_id AND g.cutoff = f.cutoff
WHERE f.eligible = 1
