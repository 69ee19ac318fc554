"""Training, metrics and scoring on small frames with known answers."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from aep_assets.ml.features import FEATURES, LABEL, feature_matrix
from aep_assets.ml.metrics import evaluate
from aep_assets.ml.scoring import Bands, score_frame
from aep_assets.ml.train import train_model


def _frame(n: int = 4000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f: rng.poisson(2, n).astype(float) for f in FEATURES}
    data["minutes_since_emailClick"] = np.where(rng.random(n) < 0.5, np.nan, rng.exponential(1000, n))
    logit = 1.5 * data["emailsClicked"] - 3 + np.where(np.isnan(data["minutes_since_emailClick"]), -1, 1)
    data[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data["userId"] = [f"u{i}" for i in range(n)]
    return pl.DataFrame(data)


def test_evaluate_matches_hand_computed_values():
    m = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["roc_auc"] == 0.75 and m["positive_rate"] == 0.5
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))


def test_evaluate_rejects_one_class_and_bad_shapes():
    with pytest.raises(ValueError, match="single class"):
        evaluate(np.zeros(4), np.full(4, 0.2))
    with pytest.raises(ValueError, match="same length"):
        evaluate(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


def test_training_learns_a_known_signal_and_is_reproducible():
    frame = _frame()
    a, b = train_model(frame, seed=3), train_model(frame, seed=3)
    assert a.metrics["roc_auc"] > 0.8
    assert a.version == b.version and a.metrics == b.metrics
    assert a.feature_importance["emailsClicked"] == max(a.feature_importance.values())
    assert train_model(frame, seed=3, params={"num_leaves": 7}).version != a.version


def test_missing_recency_stays_missing():
    x = feature_matrix(_frame(10))
    assert np.isnan(x[:, FEATURES.index("minutes_since_emailClick")]).any()


def test_too_few_positives_is_a_clear_error():
    frame = _frame(100).with_columns(pl.lit(0).alias(LABEL))
    with pytest.raises(ValueError, match="0 positives"):
        train_model(frame)


def test_scores_percentiles_deciles_and_bands():
    frame = _frame(1000)
    model = train_model(frame, seed=1)
    scores = score_frame(model.booster, frame, model_version=model.version,
                         scored_at=datetime(2026, 1, 1, tzinfo=UTC), bands=Bands(90, 60))
    assert scores.height == 1000 and scores["userId"].n_unique() == 1000
    assert scores["propensity"].is_between(0, 1).all() and scores["score"].is_between(0, 100).all()
    assert dict(scores.group_by("band").len().iter_rows()) == {"high": 100, "medium": 300, "low": 600}
    assert sorted(scores["decile"].unique().to_list()) == list(range(1, 11))
    top = scores.filter(pl.col("band") == "high")["propensity"].min()
    assert top >= scores.filter(pl.col("band") == "medium")["propensity"].max()


def test_bands_must_be_ordered():
    with pytest.raises(ValueError, match="medium_min_percentile"):
        Bands(high_min_percentile=50, medium_min_percentile=60)
