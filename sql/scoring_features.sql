-- scoring_features: the same features as of the scoring time, for every profile with events, no label.
-- grain: profile; cutoff: the scoring time, the only row of $cutoffs. `eligible` says who gets a score.
-- The feature CTEs are generated from the model definition (pipeline/feature_sql.py), ending in features.
CREATE TABLE $table AS
WITH $feature_ctes

SELECT * FROM features
