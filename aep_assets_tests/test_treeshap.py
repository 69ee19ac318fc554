"""TreeSHAP once per decision path equals LightGBM's pred_contrib row by row, whatever the missing-value
handling, categorical splits or early stopping of the model."""

import lightgbm as lgb
import numpy as np
import pytest

from aep_assets.ml.explain import binary_sigmoid, predict_with_reasons, reason_indices
from aep_assets.ml.treeshap import TreeShap, shap_values, tree_splits


def _data(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.poisson(2, n), rng.exponential(500, n), rng.normal(0, 1, n), rng.integers(0, 5, n),
                         rng.poisson(1, n)]).astype(float)
    x[rng.random(n) < 0.3, 1] = np.nan  # "never happened"
    x[rng.random(n) < 0.2, 2] = 0.0
    x[rng.random(n) < 0.05, 2] = np.nan
    logit = 0.7 * x[:, 0] - 2 + np.where(np.isnan(x[:, 1]), -1, 0.5) + 0.4 * x[:, 2] - 0.3 * (x[:, 3] == 2)
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.mark.parametrize("params", [
    {},  # NaN as missing
    {"zero_as_missing": True},
    {"use_missing": False},
    {"num_leaves": 63, "min_data_in_leaf": 5},
    {"num_leaves": 127, "min_data_in_leaf": 2},  # more splits than a 64-bit code holds
], ids=["nan-missing", "zero-as-missing", "no-missing", "deep", "deeper"])
def test_shap_values_equal_pred_contrib(params):
    x, y = _data()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, **params},
                        lgb.Dataset(x, y), num_boost_round=40)
    # Deep trees give nearly every row its own decision path, and pred_contrib takes seconds per 10,000 rows of
    # them: fewer rows test as much there.
    scored = _data(20_000 if params.get("num_leaves", 15) <= 15 else 4_000, seed=1)[0]
    if params.get("num_leaves") == 127:  # the case must reach the packed, more-than-64-bit codes
        assert max(len(s.features) for s in tree_splits(booster)) > 63
    exact = booster.predict(scored, pred_contrib=True)[:, :-1]
    shap = TreeShap(booster)
    fast, raw = shap.explain(scored)
    assert np.abs(fast - exact).max() < 1e-12
    assert np.array_equal(raw, booster.predict(scored, raw_score=True))  # LightGBM's sum, to the bit
    # What the scoring job keeps: LightGBM's probability to the bit, and the reasons pred_contrib gives.
    probability, reasons = predict_with_reasons(booster, scored, shap, binary_sigmoid(booster))
    assert np.array_equal(probability, booster.predict(scored))
    names = np.asarray([f"f{i}" for i in range(x.shape[1])], dtype=object)
    expected = [names[o] for o in np.argsort(-exact, axis=1, kind="stable")[:, :3].T]
    assert all(np.array_equal(names[a], b) for a, b in zip(reasons, expected, strict=True))


def test_categorical_splits_and_early_stopping_follow_lightgbm():
    x, y = _data()
    train, valid = lgb.Dataset(x[:4000], y[:4000], categorical_feature=[3]), lgb.Dataset(x[4000:], y[4000:])
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7}, train, num_boost_round=300,
                        valid_sets=[valid], callbacks=[lgb.early_stopping(5, verbose=False)])
    assert 0 < booster.best_iteration < 300 and any(s.categorical for s in tree_splits(booster))
    scored = _data(5000, seed=2)[0]
    assert np.abs(shap_values(booster, scored) - booster.predict(scored, pred_contrib=True)[:, :-1]).max() < 1e-12
    text = lgb.Booster(model_str=booster.model_to_string())  # as the scoring job loads it
    assert np.abs(shap_values(text, scored) - text.predict(scored, pred_contrib=True)[:, :-1]).max() < 1e-12
    _assert_scores_equal_lightgbm(booster, scored)
    _assert_scores_equal_lightgbm(text, scored)


def _assert_scores_equal_lightgbm(booster: lgb.Booster, x: np.ndarray) -> None:
    """The scoring job's probabilities are LightGBM's to the bit, and its reasons those of pred_contrib."""
    shap = TreeShap(booster)
    probability, reasons = predict_with_reasons(booster, x, shap, binary_sigmoid(booster))
    assert np.array_equal(probability, booster.predict(x))
    assert all(np.array_equal(a, b) for a, b in zip(reasons, reason_indices(booster, x, contribute=shap), strict=True))


def test_a_later_chunk_reuses_the_patterns_an_earlier_one_computed():
    x, y = _data()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15}, lgb.Dataset(x, y), num_boost_round=40)
    shap = TreeShap(booster)
    first, second = _data(20_000, seed=1)[0], _data(20_000, seed=3)[0]
    assert np.abs(shap(first) - booster.predict(first, pred_contrib=True)[:, :-1]).max() < 1e-12
    known = sum(t.codes.size for t in shap.tables)
    assert np.abs(shap(second) - booster.predict(second, pred_contrib=True)[:, :-1]).max() < 1e-12
    grown = sum(t.codes.size for t in shap.tables)
    assert known < grown < 1.5 * known  # a few new patterns; most were seen in the first chunk
    again = shap(second[:5000])
    assert sum(t.codes.size for t in shap.tables) == grown  # nothing new to ask LightGBM
    assert np.abs(again - booster.predict(second[:5000], pred_contrib=True)[:, :-1]).max() < 1e-12


def test_a_model_that_is_not_binary_is_predicted_by_lightgbm():
    x, y = _data()
    regression = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(x, y * 3.0), num_boost_round=20)
    assert binary_sigmoid(regression) is None
    probability, _ = predict_with_reasons(regression, x, TreeShap(regression), binary_sigmoid(regression))
    assert np.array_equal(probability, regression.predict(x))
    scaled = lgb.train({"objective": "binary", "sigmoid": 0.5, "verbose": -1}, lgb.Dataset(x, y), num_boost_round=20)
    probability, _ = predict_with_reasons(scaled, x, TreeShap(scaled), binary_sigmoid(scaled))
    assert np.array_equal(probability, scaled.predict(x))
