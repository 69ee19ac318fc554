"""The model's inputs: Adobe's 14 CMLE features, in the notebooks' order."""

import numpy as np
import polars as pl

FEATURES = (
    "emailsReceived", "emailsOpened", "emailsClicked", "productsViewed", "propositionInteracts",
    "propositionDismissed", "webLinkClicks", "minutes_since_emailSent", "minutes_since_emailOpened",
    "minutes_since_emailClick", "minutes_since_productView", "minutes_since_propositionInteract",
    "minutes_since_propositionDismiss", "minutes_since_linkClick",
)
LABEL = "subscriptionOccurred"
ID = "userId"


def feature_matrix(frame: pl.DataFrame) -> np.ndarray:
    """Features as float64. Missing recency stays NaN: LightGBM keeps "never" apart from "0 minutes ago"."""
    missing = [c for c in FEATURES if c not in frame.columns]
    if missing:
        raise ValueError(f"The feature frame lacks columns {missing}; it must come from sql/features.sql.")
    return frame.select([pl.col(c).cast(pl.Float64) for c in FEATURES]).to_numpy()
