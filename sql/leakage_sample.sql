-- leakage_sample: every raw event of a sample of profiles, before and after their cutoffs, with each
-- feature event's match flag (e<i>) and value (v<i>) and the goal flag as the engine evaluates them, so
-- the no_leakage check can recompute the features in Python from the events strictly before each cutoff.
-- grain: event; $user_ids is a quoted, comma-separated list of identity values.
CREATE TABLE $table AS
WITH $source_events

SELECT * FROM source_events
WHERE profile_id IN ($user_ids)
