-- eda_report: volumes, the event funnel and conversion per event type, one row per eventType.
-- grain: eventType; cutoff: none (the whole events dataset).
-- Counts distinct profiles by _$tenant_id.userid, not distinct event ids as the notebooks did.
CREATE TABLE $table AS
WITH per_profile AS (
    SELECT
        _$tenant_id.userid AS userId,
        MAX(CASE WHEN eventType = 'web.formFilledOut' THEN 1 ELSE 0 END) AS converted
    FROM $events_table
    GROUP BY _$tenant_id.userid
)

SELECT
    e.eventType,
    COUNT(*) AS events,
    COUNT(DISTINCT e._$tenant_id.userid) AS profiles,
    AVG(p.converted) AS conversion_rate_of_profiles,
    MIN(e.timestamp) AS first_seen,
    MAX(e.timestamp) AS last_seen
FROM $events_table AS e
JOIN per_profile AS p ON e._$tenant_id.userid = p.userId
GROUP BY e.eventType
