-- eda_report: volumes, the event funnel, and each event type's relation to conversion.
-- grain: eventType; cutoff: none (the whole events dataset).
-- Counts distinct profiles by _$tenant_id.userid, not distinct event ids as the notebooks did, and
-- correlates per-profile counts of each type (zero included) with having converted.
CREATE TABLE $table AS
WITH per_profile AS (
    SELECT
        _$tenant_id.userid AS userId,
        MAX(CASE WHEN eventType = 'web.formFilledOut' THEN 1 ELSE 0 END) AS converted
    FROM $events_table
    GROUP BY _$tenant_id.userid
),

per_profile_type AS (
    SELECT _$tenant_id.userid AS userId, eventType, COUNT(*) AS n
    FROM $events_table
    GROUP BY _$tenant_id.userid, eventType
),

event_types AS (
    SELECT eventType, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen
    FROM $events_table
    GROUP BY eventType
),

grid AS (
    SELECT p.userId, t.eventType, p.converted, COALESCE(pt.n, 0) AS n
    FROM per_profile AS p
    CROSS JOIN event_types AS t
    LEFT JOIN per_profile_type AS pt ON pt.userId = p.userId AND pt.eventType = t.eventType
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
