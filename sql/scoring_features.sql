-- scoring_features: the same features as of now for every profile, without a label.
-- grain: profile; cutoff: the scoring time, the only row of $cutoffs.
-- The features subquery is sql/features.sql, inlined by the asset before submission.
CREATE TABLE $table AS
SELECT * FROM ($features) AS features
