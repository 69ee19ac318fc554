"""Adobe's 14 CMLE features, which the demo's Adobe-compatible mode trains on.

A model's own features come from its definition (``feature_set.py``); these names matter only for
comparing with the notebooks' design (sql/adobe_features.sql).
"""

ADOBE_FEATURES = (
    "emailsReceived", "emailsOpened", "emailsClicked", "productsViewed", "propositionInteracts",
    "propositionDismissed", "webLinkClicks", "minutes_since_emailSent", "minutes_since_emailOpened",
    "minutes_since_emailClick", "minutes_since_productView", "minutes_since_propositionInteract",
    "minutes_since_propositionDismiss", "minutes_since_linkClick",
)
