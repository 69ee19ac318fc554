-- scoring_features: the same features as of now ($cutoff), for every profile, without a label.
-- grain: profile; cutoff: $cutoff (the scoring time).
-- The features subquery is sql/features.sql, inlined by the asset before submission.
CREATE TABLE $table AS
SELECT
    userId, cutoff, emailsReceived, emailsOpened, emailsClicked, productsViewed, propositionInteracts,
    propositionDismissed, webLinkClicks, minutes_since_emailSent, minutes_since_emailOpened,
    minutes_since_emailClick, minutes_since_productView, minutes_since_propositionInteract,
    minutes_since_propositionDismiss, minutes_since_linkClick, convertedBeforeCutoff
FROM ($features) AS features
