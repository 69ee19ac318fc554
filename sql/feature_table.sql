-- feature_table: the training rows (split 'train', at cutoff T1) and the temporal holdout (split 'test', at
-- T2 >= T1 + H, so the label windows never overlap); one row per eligible profile at its cutoff.
-- grain: (profile, cutoff); cutoff: features read only events strictly before T; label: goal_occurred = 1
-- when a goal event happens in (T, T + $horizon_days days] (churn: when none does; value: goal_value, the sum
-- of the goal's value over that window).
-- The feature CTEs are generated from the model definition (pipeline/feature_sql.py), ending in features.
CREATE TABLE $table AS
WITH $feature_ctes,

goals_in_window AS (
$goals_in_window
)

SELECT f.*, $horizon_days AS horizonDays, $label_columns
FROM features AS f
LEFT JOIN goals_in_window AS g ON g.profile_id = f.profile_id AND g.cutoff = f.cutoff
WHERE f.eligible = 1
