"""The value of a value goal: the expected sum of ``goal.value`` over the outcome window (spend in the next 90 days).

A two-part (hurdle) model, as customer-lifetime-value practice splits spend: the calibrated classifier gives
P(some goal event in the window), a LightGBM regressor with a gamma objective (log link, positive targets, the
usual choice for spend) gives E[value | some], fitted on the training rows whose window held value; their
product is the expected value, which is unbiased for the total when both parts are. The metrics are the ones a
CLV practitioner reads: rank correlation, the normalised Gini of the value, the error against predicting the
mean, and the ratio of the predicted total to the realised one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from .feature_set import GOAL_VALUE, feature_matrix

if TYPE_CHECKING:
    import lightgbm as lgb

PARAMS = {"objective": "gamma", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50,
          "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 5.0, "verbose": -1,
          "num_threads": 2, "deterministic": True, "force_row_wise": True}
MIN_ROWS = 30  # rows with value needed to fit the regressor
VALUE_METRICS = ("spearman", "normalized_gini", "rmse_skill", "mae_skill", "total_ratio", "top_decile_value_share")


@dataclass(frozen=True)
class ValueModel:
    booster: lgb.Booster
    features: tuple[str, ...]
    rows: int  # training rows with value
    scale: float = 1.0  # calibration of the total on the latest closed window (``calibrated``)

    def conditional(self, frame: pl.DataFrame) -> np.ndarray:
        """E[value | some goal event in the window] of each row."""
        return self.scale * self.booster.predict(feature_matrix(frame, self.features))

    def calibrated(self, frame: pl.DataFrame) -> ValueModel:
        """The model scaled so that its total matches the realised one over ``frame``'s rows with value: the latest
        closed window's profiles that calibrate the probabilities. A season or growth changes how much a buyer buys
        in a window as much as how many buy, and the training window cannot know it."""
        rows = frame.filter(pl.col(GOAL_VALUE) > 0)
        predicted = self.booster.predict(feature_matrix(rows, self.features)).sum() if rows.height else 0.0
        scale = float(rows[GOAL_VALUE].sum() / predicted) if predicted > 0 and rows.height >= MIN_ROWS else 1.0
        return ValueModel(self.booster, self.features, self.rows, scale)

    def to_text(self) -> str:
        return self.booster.model_to_string()

    @staticmethod
    def from_text(text: str, features: tuple[str, ...], rows: int = 0, scale: float = 1.0) -> ValueModel:
        import lightgbm as lgb
        return ValueModel(lgb.Booster(model_str=text), features, rows, scale)


def expected_value(propensity: np.ndarray, conditional: np.ndarray) -> np.ndarray:
    return np.asarray(propensity, float) * np.asarray(conditional, float)


def train_value_model(train: pl.DataFrame, features: tuple[str, ...], *, seed: int = 7,
                      num_boost_round: int = 2000, early_stopping_rounds: int = 50) -> ValueModel:
    """The regressor of E[value | some], on the training rows whose outcome window held a positive value."""
    import lightgbm as lgb
    if GOAL_VALUE not in train.columns:
        raise ValueError(f"The training rows lack {GOAL_VALUE}; a value goal's feature table adds it.")
    rows = train.filter(pl.col(GOAL_VALUE) > 0)
    if rows.height < MIN_ROWS:
        raise ValueError(f"Only {rows.height} training profiles have a positive goal.value in their outcome window; "
                         f"at least {MIN_ROWS} are needed to learn the value. Check goal.value, or lengthen "
                         "goal.outcome_days.")
    rng = np.random.default_rng(seed)
    valid = rng.random(rows.height) < 0.2
    x, y = feature_matrix(rows, features), rows[GOAL_VALUE].cast(pl.Float64).to_numpy()
    fit = lgb.Dataset(x[~valid], y[~valid], feature_name=list(features), free_raw_data=False)
    check = lgb.Dataset(x[valid], y[valid], reference=fit)
    booster = lgb.train({**PARAMS, "seed": seed}, fit, num_boost_round=num_boost_round, valid_sets=[check],
                        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
    return ValueModel(booster, features, rows.height)


def normalized_gini(realised: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of the realised value ordered by the prediction, over the Gini of the perfect order: 1 is perfect,
    0 is no better than random (ties in the prediction are broken against the model)."""
    def gini(order_by: np.ndarray) -> float:
        order = np.lexsort((realised, -order_by))  # highest prediction first; ties: lowest realised first
        captured = np.cumsum(realised[order]) / realised.sum()
        return float(captured.mean() - (np.arange(1, len(realised) + 1) / len(realised)).mean())

    realised, predicted = np.asarray(realised, float), np.asarray(predicted, float)
    if realised.sum() <= 0:
        return float("nan")
    return gini(predicted) / gini(realised)


def value_metrics(realised: np.ndarray, predicted: np.ndarray, baseline_mean: float) -> dict[str, float]:
    """How well ``predicted`` forecasts ``realised`` value, row by row and in total. ``baseline_mean``: the mean
    value per training profile, the forecast that knows nothing about the profile."""
    from scipy.stats import spearmanr

    realised, predicted = np.asarray(realised, float), np.asarray(predicted, float)
    if len(realised) == 0:
        raise ValueError("No rows to measure the value forecast on.")
    rmse = float(np.sqrt(np.mean((predicted - realised) ** 2)))
    rmse_mean = float(np.sqrt(np.mean((baseline_mean - realised) ** 2)))
    mae, mae_mean = float(np.mean(np.abs(predicted - realised))), float(np.mean(np.abs(baseline_mean - realised)))
    top = np.argsort(-predicted, kind="stable")[: max(len(realised) // 10, 1)]
    total = realised.sum()
    return {
        "spearman": float(spearmanr(predicted, realised).statistic) if np.ptp(realised) > 0 else float("nan"),
        "normalized_gini": normalized_gini(realised, predicted),
        "rmse": rmse, "rmse_skill": 1 - rmse / rmse_mean if rmse_mean > 0 else float("nan"),
        "mae": mae, "mae_skill": 1 - mae / mae_mean if mae_mean > 0 else float("nan"),
        "predicted_total": float(predicted.sum()), "realised_total": float(total),
        "total_ratio": float(predicted.sum() / total) if total > 0 else float("nan"),
        "top_decile_value_share": float(realised[top].sum() / total) if total > 0 else float("nan"),
    }
