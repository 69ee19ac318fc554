-- leakage_sample: every raw event of a sample of profiles, before and after their cutoffs, so the
-- no_leakage check can recompute their features in Python from the events strictly before each cutoff.
-- grain: event; $user_ids is a quoted, comma-separated list of ECIDs.
CREATE TABLE $table AS
SELECT _$tenant_id.userid AS userId, eventType, timestamp
FROM $events_table
WHERE _$tenant_id.userid IN ($user_ids)
