-- goals_in_window: goal events per (profile, cutoff T) in (T, T + $horizon_days days], over the model's events
-- (and, for a value goal, the sum of their goal_value).
SELECT e.profile_id, c.cutoff, COUNT(*) AS goals$goal_value_sum
FROM events AS e
JOIN cutoffs AS c ON e.timestamp > c.cutoff AND e.timestamp <= c.cutoff + INTERVAL $horizon_days DAYS
WHERE e.goal_event = 1
GROUP BY e.profile_id, c.cutoff
