-- eda_report: volumes, the event funnel, and each event type's relation to the model's goal.
-- grain: eventType; cutoff: none (the whole of the model's event datasets).
-- Counts distinct profiles by the model's identity, not distinct event ids as the notebooks did, and
-- correlates per-profile counts of each type (zero included) with having reached the goal.
CREATE TABLE $table AS
WITH $source_events,

per_profile AS (
    SELECT profile_id, MAX(goal_event) AS converted
    FROM source_events
    WHERE profile_id IS NOT NULL
    GROUP BY profile_id
),

per_profile_type AS (
    SELECT profile_id, eventType, COUNT(*) AS n
    FROM source_events
    WHERE profile_id IS NOT NULL
    GROUP BY profile_id, eventType
),

event_types AS (
    SELECT eventType, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen
    FROM source_events
    GROUP BY eventType
),

grid AS (
    SELECT p.profile_id, t.eventType, p.converted, COALESCE(pt.n, 0) AS n
    FROM per_profile AS p
    CROSS JOIN event_types AS t
    LEFT JOIN per_profile_type AS pt ON pt.profile_id = p.profile_id AND pt.eventType = t.eventType
)

SELECT
    g.eventType,
    SUM(g.n) AS events,
    SUM(CASE WHEN g.n > 0 THEN 1 ELSE 0 END) AS profiles,
    AVG(CASE WHEN g.n > 0 THEN g.converted END) AS conversion_rate_with_event,
    CORR(g.n, g.converted) AS corr_count_with_conversion,
    MIN(t.first_seen) AS first_seen,
    MAX(t.last_seen) AS last_seen
FROM grid AS g
JOIN event_types AS t ON t.eventType = g.eventType
GROUP BY g.eventType
