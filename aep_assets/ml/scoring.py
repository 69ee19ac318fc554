"""Score bands: the thresholds chosen from the held-out gains, and the percentiles they apply to."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from .feature_set import GOAL_VALUE, LABEL, PREDICTED_VALUE

HIGH_BAND_POLICIES = ("top_decile", "reach", "precision")
BANDS = ("high", "medium", "low")  # each an audience; a converted profile is in none


@dataclass(frozen=True)
class Bands:
    """Band of a profile by its propensity percentile: high >= high_min, medium >= medium_min, else low."""

    high_min_percentile: int = 90
    medium_min_percentile: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.medium_min_percentile < self.high_min_percentile <= 100:
            raise ValueError(f"Need 0 < medium_min_percentile ({self.medium_min_percentile}) < high_min_percentile "
                             f"({self.high_min_percentile}) <= 100.")

    def of(self, percentile: np.ndarray) -> np.ndarray:
        return np.where(percentile >= self.high_min_percentile, "high",
                        np.where(percentile >= self.medium_min_percentile, "medium", "low"))


@dataclass(frozen=True)
class BandPolicy:
    """How the high band is chosen from the held-out gains: the top decile (default), a ``reach`` (share
    of profiles), or the largest reach whose held-out precision is at least ``target_precision``. The
    medium band is the next ``medium_reach`` of profiles."""

    high: str = "top_decile"
    reach: float = 0.10
    target_precision: float = 0.0
    medium_reach: float = 0.30

    def __post_init__(self) -> None:
        if self.high not in HIGH_BAND_POLICIES:
            raise ValueError(f"high band policy {self.high!r} is not one of {HIGH_BAND_POLICIES}.")
        if not 0.01 <= self.reach <= 0.5:
            raise ValueError(f"reach = {self.reach} must be between 0.01 and 0.5 (a share of profiles).")
        if not 0.01 <= self.medium_reach <= 0.8:
            raise ValueError(f"medium_reach = {self.medium_reach} must be between 0.01 and 0.8.")
        if self.high == "precision" and not 0 < self.target_precision < 1:
            raise ValueError(f"target_precision = {self.target_precision} must be in (0, 1) for the precision "
                             "policy, e.g. 0.1 for 'at least 10 % of the high band converts'.")


def percentiles(p: np.ndarray) -> np.ndarray:
    """0-99: the share of profiles scored below, in whole percents, ties by position (held-out rows; scores
    rank by identity, ml/ranking.py)."""
    order = np.argsort(p, kind="stable")
    rank = np.empty(len(p))
    rank[order] = np.arange(len(p))
    return np.floor(100 * rank / max(len(p), 1)).astype(np.int64)


def choose_bands(policy: BandPolicy, holdout: pl.DataFrame) -> tuple[Bands, dict[str, float]]:
    """Band thresholds from the held-out predictions (propensity, or a value goal's predicted_value, and the
    label), and each band's held-out conversion rate: what the audience is expected to convert at."""
    p, y = holdout[PREDICTED_VALUE if PREDICTED_VALUE in holdout.columns else "propensity"].to_numpy(), \
        holdout[LABEL].to_numpy()
    if policy.high == "precision":
        ranked = y[np.argsort(-p, kind="stable")]
        precision = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
        shares = [s for s in range(1, 51) if precision[max(int(len(y) * s / 100) - 1, 0)] >= policy.target_precision]
        if not shares:
            raise ValueError(f"No high band of 1-50 % of profiles reaches precision {policy.target_precision} on the "
                             f"held-out rows (top 1 % converts at {precision[max(len(y) // 100 - 1, 0)]:.3f}); "
                             "lower target_precision or use the reach policy.")
        high_share = max(shares)
    else:
        high_share = 10 if policy.high == "top_decile" else round(100 * policy.reach)
    high_min = 100 - high_share
    bands = Bands(high_min, max(1, high_min - round(100 * policy.medium_reach)))
    band = bands.of(percentiles(p))
    expected = {b: float(y[band == b].mean()) if (band == b).any() else float("nan") for b in BANDS}
    return bands, expected


def expected_values(bands: Bands, holdout: pl.DataFrame) -> dict[str, float]:
    """A value goal's held-out mean realised value per band (empty for other goals)."""
    if PREDICTED_VALUE not in holdout.columns:
        return {}
    band = bands.of(percentiles(holdout[PREDICTED_VALUE].to_numpy()))
    value = holdout[GOAL_VALUE].to_numpy()
    return {b: float(value[band == b].mean()) if (band == b).any() else float("nan") for b in BANDS}
