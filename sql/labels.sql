-- labels: conversions per (profile, cutoff T in $cutoffs) in (T, T + $horizon_days days].
SELECT e._$tenant_id.userid AS userId, c.cutoff, COUNT(*) AS conversions
FROM $events_table AS e
JOIN (VALUES $cutoffs) AS c(cutoff, split)
  ON e.timestamp > c.cutoff AND e.timestamp <= c.cutoff + INTERVAL $horizon_days DAYS
WHERE e.eventType = 'web.formFilledOut'
GROUP BY e._$tenant_id.userid, c.cutoff
