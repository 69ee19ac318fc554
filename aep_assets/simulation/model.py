"""Behaviour models: how a profile's attributes and history set its event rates and its propensity.

``adobe`` is the notebooks' model (reference/cmle.md §1.5): every profile has the same rates, the
propensity starts at 0.001, moves by each event's delta and never decays. ``extended`` (the default)
adds profile-attribute effects and lets the propensity decay back to the profile's baseline, so what a
profile did recently matters more than what it did months ago.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class BehaviourModel:
    name: str
    baseline: float  # propensity of a member-tier profile with no history
    tier_propensity: tuple[float, ...]  # baseline multiplier per loyalty tier (member .. diamond)
    tier_activity: tuple[float, ...]  # base event rate multiplier per loyalty tier
    age_activity: tuple[float, float, float]  # rate multiplier for ages < 35, 35-54, 55+
    decay_days: float | None  # e-folding time of (propensity - baseline); None: never decays
    conversion_scale: float  # chance of converting at a draw = conversion_scale * propensity
    weeks: int  # weeks of base events
    gap_weeks: int  # base events stop this long before as_of

    def decay(self, seconds: np.ndarray) -> np.ndarray:
        if self.decay_days is None:
            return np.ones_like(seconds)
        return np.exp(-seconds / (self.decay_days * 86400.0))


ADOBE = BehaviourModel("adobe", baseline=0.001, tier_propensity=(1.0,) * 5, tier_activity=(1.0,) * 5,
                       age_activity=(1.0, 1.0, 1.0), decay_days=None, conversion_scale=1.0, weeks=10, gap_weeks=2)
EXTENDED = BehaviourModel("extended", baseline=0.01, tier_propensity=(1.0, 2.0, 4.0, 8.0, 16.0),
                          tier_activity=(0.3, 1.0, 2.0, 3.5, 5.0), age_activity=(1.8, 1.0, 0.5), decay_days=20.0,
                          conversion_scale=0.04, weeks=20, gap_weeks=0)
MODELS = {m.name: m for m in (ADOBE, EXTENDED)}


def get_model(name: str) -> BehaviourModel:
    if name not in MODELS:
        raise ValueError(f"Unknown behaviour model {name!r}; use one of {sorted(MODELS)}.")
    return MODELS[name]


@dataclass(frozen=True)
class Traits:
    """Per-profile parameters of the behaviour model, derived from the profile's attributes."""

    activity: np.ndarray  # multiplier of the base event rates
    baseline: np.ndarray  # propensity with no recent history


def traits(model: BehaviourModel, profiles: pl.DataFrame, as_of_year: int) -> Traits:
    tier = profiles["loyalty_tier_rank"].to_numpy()
    age = as_of_year - profiles["birth_year"].to_numpy()
    age_band = np.digitize(age, [35, 55])
    activity = np.asarray(model.tier_activity)[tier] * np.asarray(model.age_activity)[age_band]
    baseline = model.baseline * np.asarray(model.tier_propensity)[tier]
    return Traits(activity=activity, baseline=baseline)
