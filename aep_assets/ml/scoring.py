"""Scores, percentiles, deciles and bands for every profile."""

from dataclasses import dataclass
from datetime import datetime

import lightgbm as lgb
import numpy as np
import polars as pl

from .features import ID, feature_matrix


@dataclass(frozen=True)
class Bands:
    """Band of a profile by its propensity percentile: high >= high_min, medium >= medium_min, else low."""

    high_min_percentile: int = 90
    medium_min_percentile: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.medium_min_percentile < self.high_min_percentile <= 100:
            raise ValueError(f"Need 0 < medium_min_percentile ({self.medium_min_percentile}) < high_min_percentile "
                             f"({self.high_min_percentile}) <= 100.")


def score_frame(booster: lgb.Booster, frame: pl.DataFrame, *, model_version: str, scored_at: datetime,
                bands: Bands) -> pl.DataFrame:
    p = booster.predict(feature_matrix(frame), num_iteration=booster.best_iteration or None)
    n = len(p)
    order = np.argsort(p, kind="stable")
    rank = np.empty(n)
    rank[order] = np.arange(n)
    percentile = np.floor(100 * rank / max(n, 1)).astype(np.int64)
    band = np.where(percentile >= bands.high_min_percentile, "high",
                    np.where(percentile >= bands.medium_min_percentile, "medium", "low"))
    return pl.DataFrame({
        ID: frame[ID], "propensity": p, "score": np.rint(100 * p).astype(np.int64), "percentile": percentile,
        "decile": np.minimum(percentile // 10 + 1, 10), "band": band, "model_version": model_version,
        "scored_at": pl.Series([scored_at] * n, dtype=pl.Datetime("us", "UTC")),
    })
