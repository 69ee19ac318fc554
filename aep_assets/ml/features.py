"""The model's inputs: Adobe's 14 CMLE features, then windowed counts, recency, ratios and attributes.

``sql/features.sql`` computes them in Query Service. ``reference_features`` computes the same values
from raw events in Python; the leakage check and the tests compare the two.
"""

from datetime import datetime

import numpy as np
import polars as pl

ADOBE_FEATURES = (
    "emailsReceived", "emailsOpened", "emailsClicked", "productsViewed", "propositionInteracts",
    "propositionDismissed", "webLinkClicks", "minutes_since_emailSent", "minutes_since_emailOpened",
    "minutes_since_emailClick", "minutes_since_productView", "minutes_since_propositionInteract",
    "minutes_since_propositionDismiss", "minutes_since_linkClick",
)

# Event counts: feature -> event type. Each is counted over all history and over the last 7 and 28 days.
COUNTED = {
    "emailsReceived": "directMarketing.emailSent",
    "emailsOpened": "directMarketing.emailOpened",
    "emailsClicked": "directMarketing.emailClicked",
    "pageViews": "web.webpagedetails.pageViews",
    "productsViewed": "commerce.productViews",
    "purchases": "commerce.purchases",
    "propositionDisplays": "decisioning.propositionDisplay",
    "propositionInteracts": "decisioning.propositionInteract",
    "propositionDismissed": "decisioning.propositionDismiss",
    "webLinkClicks": "web.webinteraction.linkClicks",
}
WINDOWS = (7, 28)
# Minutes from the last such event before T to T; NULL (never 0) when there was none.
RECENCY = {
    "minutes_since_emailSent": "directMarketing.emailSent",
    "minutes_since_emailOpened": "directMarketing.emailOpened",
    "minutes_since_emailClick": "directMarketing.emailClicked",
    "minutes_since_productView": "commerce.productViews",
    "minutes_since_propositionInteract": "decisioning.propositionInteract",
    "minutes_since_propositionDismiss": "decisioning.propositionDismiss",
    "minutes_since_linkClick": "web.webinteraction.linkClicks",
    "minutes_since_pageView": "web.webpagedetails.pageViews",
    "minutes_since_purchase": "commerce.purchases",
}
# Ratios over the last 28 days: feature -> (numerator, denominator); NULL when the denominator is 0.
RATIOS = {
    "emailOpenRate_28d": ("emailsOpened_28d", "emailsReceived_28d"),
    "emailClickRate_28d": ("emailsClicked_28d", "emailsOpened_28d"),
}
ATTRIBUTES = ("loyaltyTierRank", "loyaltyPoints", "age", "tenureDays")
LOYALTY_TIERS = ("member", "silver", "gold", "platinum", "diamond")

COUNT_FEATURES = tuple(COUNTED) + tuple(f"{name}_{d}d" for name in COUNTED for d in WINDOWS)
EVENT_FEATURES = COUNT_FEATURES + tuple(RECENCY) + tuple(RATIOS)
FEATURES = tuple(dict.fromkeys(ADOBE_FEATURES + EVENT_FEATURES + ATTRIBUTES))
LABEL = "subscriptionOccurred"
ID = "userId"
CONVERSION_EVENT = "web.formFilledOut"


def feature_matrix(frame: pl.DataFrame, features: tuple[str, ...] = FEATURES) -> np.ndarray:
    """Features as float64. Missing recency stays NaN: LightGBM keeps "never" apart from "0 minutes ago"."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"The feature frame lacks columns {missing}; it must come from sql/features.sql.")
    return frame.select([pl.col(c).cast(pl.Float64) for c in features]).to_numpy()


def reference_features(events: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """The event features of sql/features.sql, from raw events (userId, eventType, timestamp).

    Only events strictly before ``cutoff`` are read. Profiles with no such event get no row here;
    in the SQL they get zero counts and NULL recency.
    """
    history = events.filter(pl.col("timestamp") < cutoff)
    minutes = (pl.lit(cutoff) - pl.col("timestamp")).dt.total_microseconds() / 60e6
    aggs = []
    for name, event_type in COUNTED.items():
        is_type = pl.col("eventType") == event_type
        aggs.append(is_type.sum().cast(pl.Int64).alias(name))
        for days in WINDOWS:
            aggs.append((is_type & (minutes <= days * 1440)).sum().cast(pl.Int64).alias(f"{name}_{days}d"))
    for name, event_type in RECENCY.items():
        aggs.append(minutes.filter(pl.col("eventType") == event_type).min().alias(name))
    out = history.group_by(ID).agg(aggs)
    return out.with_columns([
        pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None).alias(name)
        for name, (num, den) in RATIOS.items()])
