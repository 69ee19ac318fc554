-- feature_table: the training rows (split 'train', at cutoff T1) and the temporal holdout (split 'test',
-- at T2 >= T1 + H, so the label windows never overlap); one row per profile not yet converted at its cutoff.
-- grain: (profile, cutoff); label: subscriptionOccurred = 1 when web.formFilledOut happens in
-- (T, T + $horizon_days days]. The features subquery is sql/features.sql, inlined before submission.
CREATE TABLE $table AS
WITH features AS (
$features
),

converted_in_horizon AS (
$labels
)

SELECT f.*, $horizon_days AS horizonDays, CASE WHEN h.conversions > 0 THEN 1 ELSE 0 END AS subscriptionOccurred
FROM features AS f
LEFT JOIN converted_in_horizon AS h ON h.userId = f.userId AND h.cutoff = f.cutoff
WHERE f.convertedBeforeCutoff = 0
