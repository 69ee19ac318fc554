"""Did the scores come true? Expected versus realised conversion of one scoring run, once its outcome
window has closed.

The expected rate of a group is the mean of its propensities. Two things make the realised rate differ
from it when the scores are right: the outcomes are draws (under the scores, a group's conversions are a
Poisson binomial with variance sum p(1 - p)), and the expected rate is itself an estimate, which the
calibration learned from ``calibration_rows`` labelled rows (about that many times the group's share of
them speak for it, giving a Wilson interval of their own). The interval adds both half-widths in
quadrature on each side. With ten deciles and three bands checked at once, z is Bonferroni-corrected
so that a well-calibrated run stays inside every interval with probability ``1 - alpha``. The realised
rate also gets its own Wilson interval, for the plots.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

DECILES = 10


def wilson(conversions: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    n = np.maximum(n, 1)
    p = conversions / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@dataclass(frozen=True)
class OutcomeComparison:
    profiles: int
    conversions: int
    expected_rate: float  # mean propensity
    realised_rate: float
    calibration_in_the_large: float  # realised - expected, over everyone
    roc_auc: float
    pr_auc: float
    # per decile: profiles, conversions, expected_rate (low, high), realised_rate (low, high), inside
    by_decile: pl.DataFrame
    by_band: pl.DataFrame  # the same per band
    z: float  # half-width multiplier of the expected intervals, after the Bonferroni correction

    @property
    def outside(self) -> list[str]:
        """The groups whose realised rate left its expected interval."""
        return ([f"decile {d}" for d in self.by_decile.filter(~pl.col("inside"))["decile"]]
                + [f"band {b}" for b in self.by_band.filter(~pl.col("inside"))["band"]])

    @property
    def calibrated(self) -> bool:
        return not self.outside


def _groups(frame: pl.DataFrame, by: str, z: float, calibration_rows: int) -> pl.DataFrame:
    from scipy.stats import norm
    g = (frame.group_by(by).agg(
        pl.len().alias("profiles"), pl.col("converted").sum().alias("conversions"),
        pl.col("propensity").mean().alias("expected_rate"),
        (pl.col("propensity") * (1 - pl.col("propensity"))).sum().alias("_var"))
        .sort(by))
    n, conv = g["profiles"].to_numpy(), g["conversions"].to_numpy()
    low, high = wilson(conv, n, float(norm.ppf(0.975)))
    expected = g["expected_rate"].to_numpy()
    below = above = z * np.sqrt(g["_var"].to_numpy()) / n  # the outcomes' own noise
    if calibration_rows:
        # The calibration's estimate, as a proportion over the rows behind each group: a Wilson interval,
        # which stays honest where a rate near 0 or 1 makes the normal one collapse.
        behind = np.maximum(np.round(calibration_rows * n / frame.height), 1.0)
        cal_low, cal_high = wilson(expected * behind, behind, z)
        below = np.sqrt(below ** 2 + np.maximum(expected - cal_low, 0) ** 2)
        above = np.sqrt(above ** 2 + np.maximum(cal_high - expected, 0) ** 2)
    return g.drop("_var").with_columns(
        (pl.col("conversions") / pl.col("profiles")).alias("realised_rate"),
        pl.Series("realised_low", low), pl.Series("realised_high", high),
        (pl.col("expected_rate") - pl.Series(below)).alias("expected_low"),
        (pl.col("expected_rate") + pl.Series(above)).alias("expected_high"),
    ).with_columns(pl.col("realised_rate").is_between(pl.col("expected_low"), pl.col("expected_high")).alias("inside"))


def compare_outcomes(scores: pl.DataFrame, alpha: float = 0.05, calibration_rows: int = 0) -> OutcomeComparison:
    """``scores``: one row per scored profile with ``propensity``, ``decile``, ``band`` and ``converted``
    (the goal happened in the window). ``calibration_rows``: how many labelled rows the model's calibration
    was fitted on (0: treat the expected rates as exact)."""
    from scipy.stats import norm
    from sklearn.metrics import average_precision_score, roc_auc_score
    if scores.height == 0:
        raise ValueError("No scored profiles to compare with their outcomes.")
    bands = scores["band"].n_unique()
    z = float(norm.ppf(1 - alpha / (2 * (DECILES + bands))))
    frame = scores.select("propensity", "decile", "band", pl.col("converted").cast(pl.Int64))
    y, p = frame["converted"].to_numpy(), frame["propensity"].to_numpy()
    both = 0 < y.sum() < len(y)
    expected, realised = float(p.mean()), float(y.mean())
    return OutcomeComparison(
        profiles=len(y), conversions=int(y.sum()), expected_rate=expected, realised_rate=realised,
        calibration_in_the_large=realised - expected,
        roc_auc=float(roc_auc_score(y, p)) if both else float("nan"),
        pr_auc=float(average_precision_score(y, p)) if both else float("nan"),
        by_decile=_groups(frame, "decile", z, calibration_rows), by_band=_groups(frame, "band", z, calibration_rows),
        z=z)
