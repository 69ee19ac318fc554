-- feature_table: the training set, one row per profile not yet converted at $cutoff.
-- grain: profile; cutoff: $cutoff; horizon: $horizon_days days; label: subscriptionOccurred.
-- The features subquery is sql/features.sql, inlined by the asset before submission.
CREATE TABLE $table AS
SELECT * FROM ($features) AS features
WHERE convertedBeforeCutoff = 0
