"""A campaign whose effect differs from profile to profile, as real ones do, so an uplift model has something
to find and the oracle knows what it should have found.

A profile's response to being activated depends on what it did and who it is, as of the activation, through
things the model's features see (the loyalty tier, email opens and dismissed offers in the last 28 days):

- ``do_not_disturb``: dismissed an offer lately; the campaign puts it off, cancelling each of its own
  conversions in the window with chance ``DISTURB_DAMPING`` x uplift (at most 1).
- ``sure_thing``: gold and above, who convert at their own pace; the campaign changes nothing.
- ``persuadable``: member or silver who opened an email lately; the campaign converts ``uplift`` of those
  who would not have converted on their own.
- ``lost_cause``: member or silver who opened none; nothing changes.

So a profile's true uplift is ``lift * (1 - p0) - damp * p0``, where ``p0`` is its own chance of converting in
the window (the oracle's, from its state at the activation).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from .behaviour import Simulation
from .oracle import oracle_probability

RECENT = timedelta(days=28)
DISTURB_DAMPING = 5.0
SEGMENTS = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")
SURE_THING_TIER = 2  # gold


@dataclass(frozen=True)
class CampaignEffect:
    """Per profile row of the simulation."""

    segment: np.ndarray  # index into SEGMENTS
    lift: np.ndarray  # chance the campaign converts a member who would not have converted
    damp: np.ndarray  # chance it cancels a member's own conversion

    def true_uplift(self, p0: np.ndarray) -> np.ndarray:
        return self.lift * (1 - p0) - self.damp * p0

    def segment_names(self) -> list[str]:
        return [SEGMENTS[s] for s in self.segment]


def _recent_counts(sim: Simulation, at: datetime, event_type: str) -> np.ndarray:
    first = int(sim.profiles["profile_index"].min())
    rows = (sim.events.lazy()
            .filter((pl.col("event_type") == event_type) & (pl.col("timestamp") < at)
                    & (pl.col("timestamp") >= at - RECENT))
            .group_by("profile_index").len().collect())
    counts = np.zeros(sim.profiles.height, np.int64)
    counts[rows["profile_index"].to_numpy() - first] = rows["len"].to_numpy()
    return counts


def campaign_effect(sim: Simulation, at: datetime, uplift: float) -> CampaignEffect:
    """Each profile's response to an activation at ``at``, scaled by ``uplift`` (0: no effect on anyone)."""
    opened = _recent_counts(sim, at, "directMarketing.emailOpened") > 0
    dismissed = _recent_counts(sim, at, "decisioning.propositionDismiss") > 0
    sure = sim.profiles["loyalty_tier_rank"].to_numpy() >= SURE_THING_TIER
    segment = np.select([dismissed, sure, opened], [SEGMENTS.index("do_not_disturb"), SEGMENTS.index("sure_thing"),
                                                    SEGMENTS.index("persuadable")], SEGMENTS.index("lost_cause"))
    lift = np.where(segment == SEGMENTS.index("persuadable"), min(uplift, 1.0), 0.0)
    damp = np.where(segment == SEGMENTS.index("do_not_disturb"), min(DISTURB_DAMPING * uplift, 1.0), 0.0)
    return CampaignEffect(segment, lift, damp)


def uplift_truth(sim: Simulation, at: datetime, window_days: int, effect: CampaignEffect, k: int = 32) -> pl.DataFrame:
    """Per profile: its segment, the effect's parameters, its own chance of converting in (at, at + window] (the
    oracle's, from its true state at ``at``; NaN once converted) and so its true uplift."""
    own = oracle_probability(sim, at, window_days, k, continued=True)
    return pl.DataFrame({"profile_index": sim.profiles["profile_index"], "userid": sim.profiles["userid"],
                         "segment": effect.segment_names(), "lift": effect.lift, "damp": effect.damp,
                         "own_probability": own, "true_uplift": effect.true_uplift(own)})
