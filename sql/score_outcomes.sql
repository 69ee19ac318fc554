-- score_outcomes: what happened after each scoring run, for looking back once its outcome window closed.
-- grain: (profile, run); one row of $cutoffs per run (cutoff T, split = the run's label); window: goal
-- events in (T, T + $horizon_days days], the window the scores forecast.
CREATE TABLE $table AS
WITH cutoffs AS (
    SELECT cutoff, split FROM (VALUES $cutoffs) AS c(cutoff, split)
),

$source_events,

events AS (
    SELECT * FROM source_events WHERE profile_id IS NOT NULL
),

goals_in_window AS (
$goals_in_window
)

SELECT g.profile_id, c.split, g.goals$goal_value_sum_column
FROM goals_in_window AS g
JOIN cutoffs AS c ON c.cutoff = g.cutoff
