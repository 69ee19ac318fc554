"""Training, calibration, metrics, bands and reason codes on frames with a known signal."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from aep_assets.ml.batch_scoring import Scorer, Stamp, score_in_memory
from aep_assets.ml.calibration import Calibrator, fit_calibrator
from aep_assets.ml.design import TemporalSplit
from aep_assets.ml.feature_set import ID, LABEL, feature_matrix
from aep_assets.ml.metrics import evaluate, expected_calibration_error, gains
from aep_assets.ml.scoring import BandPolicy, Bands, choose_bands
from aep_assets.ml.train import TrainingConfig, train_model

from .demo import feature_set

FEATURES = feature_set().names

T1, T2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)


def _rows(n: int, rng: np.random.Generator, split: str, cutoff: datetime, base: float = -5) -> pl.DataFrame:
    data = {f: rng.poisson(2, n).astype(float) for f in FEATURES}
    data["minutes_since_emailClick"] = np.where(rng.random(n) < 0.5, np.nan, rng.exponential(1000, n))
    logit = 1.2 * data["emailsClicked_7d"] + base + np.where(np.isnan(data["minutes_since_emailClick"]), -1, 1)
    data[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data[ID] = [f"{split}{i}" for i in range(n)]
    return pl.DataFrame(data).with_columns(pl.lit(split).alias("split"), pl.lit(cutoff).alias("cutoff"))


def _frame(n: int = 6000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.concat([_rows(n, rng, "train", T1), _rows(n // 2, rng, "test", T2)])


@pytest.fixture(scope="module")
def model():
    return train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=3))


def test_evaluate_matches_hand_computed_values():
    m = evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["roc_auc"] == 0.75 and m["positive_rate"] == 0.5
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert m["brier"] == pytest.approx(np.mean(np.square([0.1, 0.4, 0.65, 0.2])))


def test_ece_is_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.5, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.minimum(p * 2, 1)) > 0.2


def test_gains_table_is_cumulative_and_ends_at_one():
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = gains(y, p)
    assert table["decile"].to_list() == list(range(1, 11)) and table["rows"].sum() == 1000
    assert table["cumulative_gain"][-1] == pytest.approx(1.0) and table["lift"][0] > 1.5
    assert (table["cumulative_gain"].diff().drop_nulls() >= 0).all()


def test_evaluate_rejects_one_class_and_bad_shapes():
    with pytest.raises(ValueError, match="single class"):
        evaluate(np.zeros(4), np.full(4, 0.2))
    with pytest.raises(ValueError, match="same length"):
        evaluate(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


def test_training_learns_the_signal_is_calibrated_and_reproducible(model):
    assert model.metrics["roc_auc"] > 0.75 and model.metrics["ece"] < 0.04
    assert max(model.feature_importance, key=model.feature_importance.get) == "emailsClicked_7d"
    again = train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=3))
    assert again.version == model.version and again.metrics == model.metrics
    assert train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=1)).version != model.version
    assert model.rows["temporal_test"] + model.rows["calibration"] == 3000 and len(model.trials) == 3


def test_the_model_does_not_depend_on_the_order_the_export_gave_its_rows(model):
    # AEP's export files come in no fixed order: the folds, the trees, the holdout and the version must not change
    shuffled = train_model(_frame().sample(fraction=1.0, shuffle=True, seed=11), FEATURES,
                           TrainingConfig(seed=3, trials=3))
    assert shuffled.version == model.version and shuffled.metrics == model.metrics
    assert shuffled.to_text() == model.to_text() and shuffled.holdout.equals(model.holdout)
    assert np.array_equal(shuffled.validated_propensity, model.validated_propensity)


def test_probabilities_follow_the_base_rate_of_the_latest_closed_window():
    # A season: the same features convert more often in the test window (T2) than in the training one (T1).
    rng = np.random.default_rng(5)
    frame = pl.concat([_rows(8000, rng, "train", T1), _rows(6000, rng, "test", T2, base=-4)])
    model = train_model(frame, FEATURES, TrainingConfig(seed=3, trials=2))
    realised = model.holdout[LABEL].mean()
    assert model.holdout["propensity"].mean() == pytest.approx(realised, rel=0.1)
    assert model.metrics["ece"] < 0.04 and model.rows["calibration"] == 3000


def test_a_large_fit_fold_searches_on_a_sample_and_refits_the_winner_on_every_row(model):
    sampled = train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=3, search_rows=1500))
    assert sampled.rows["search"] == 1500 < sampled.rows["fit"] == model.rows["fit"] == model.rows["search"]
    assert sampled.metrics["roc_auc"] > model.metrics["roc_auc"] - 0.02  # the same signal, within noise
    refit_rows = sampled.booster.dump_model()["tree_info"][0]["tree_structure"]["internal_count"]
    assert refit_rows > 0.7 * sampled.rows["fit"] > 1500  # the final trees saw the whole fit fold (80 % bagged)


def test_trials_behind_the_best_stop_early_and_the_winner_does_not_change():
    pruned = train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=6))
    exhaustive = train_model(_frame(), FEATURES, TrainingConfig(seed=3, trials=6, prune_trials=False))
    assert pruned.version == exhaustive.version and pruned.metrics == exhaustive.metrics
    assert not any(t["pruned"] for t in exhaustive.trials)
    stopped = [(p, e) for p, e in zip(pruned.trials, exhaustive.trials, strict=True) if p["pruned"]]
    assert stopped and all(p["rounds"] < e["rounds"] for p, e in stopped)
    winner = min(t["valid_log_loss"] for t in pruned.trials if not t["pruned"])
    assert all(p["valid_log_loss"] > winner for p, _ in stopped)
    # a trial trains until early stopping: its best round, then early_stopping_rounds more
    assert all(e["rounds"] == e["best_iteration"] + 50 for e in exhaustive.trials)


def test_the_holdout_is_the_test_split_less_the_profiles_that_calibrated(model):
    assert model.holdout[ID].str.starts_with("test").all() and model.holdout.height == 1500
    assert model.holdout[ID].n_unique() == 1500 and model.rows["calibration"] == 1500


def test_missing_recency_stays_missing():
    x = feature_matrix(_frame(10), FEATURES)
    assert np.isnan(x[:, FEATURES.index("minutes_since_emailClick")]).any()


def test_too_few_positives_is_a_clear_error():
    frame = _frame(100).with_columns(pl.lit(0).alias(LABEL))
    with pytest.raises(ValueError, match="0 positives"):
        train_model(frame, FEATURES)


def test_calibrators_round_trip_and_are_monotone():
    rng = np.random.default_rng(2)
    raw = rng.random(5000)
    y = (rng.random(5000) < raw ** 2).astype(int)
    for method in ("isotonic", "platt"):
        cal = fit_calibrator(raw, y, method)
        again = Calibrator.from_dict(cal.to_dict())
        grid = np.linspace(0, 1, 50)
        assert np.array_equal(again.apply(grid), cal.apply(grid)) and (np.diff(cal.apply(grid)) >= -1e-12).all()
    with pytest.raises(ValueError, match="calibration 'beta'"):
        fit_calibrator(raw, y, "beta")


def test_temporal_split_rejects_overlapping_label_windows():
    with pytest.raises(ValueError, match="overlap the test window"):
        TemporalSplit(T1, T1 + timedelta(days=7), horizon_days=14)
    with pytest.raises(ValueError, match="after now"):
        TemporalSplit(T1, T2, 14).require_observed(now=T2 + timedelta(days=3))


def test_scores_percentiles_deciles_bands_expiry_and_reasons(model):
    frame = _frame(1000).filter(pl.col("split") == "train")
    scored_at = datetime(2026, 2, 1, tzinfo=UTC)
    scores = score_in_memory(Scorer(model.booster, model.calibrator, model.features), frame,
                             Stamp(Bands(90, 60), model.version, scored_at, scored_at + timedelta(days=7)))
    assert scores.height == 1000 and scores[ID].n_unique() == 1000
    assert scores["propensity"].is_between(0, 1).all() and scores["score"].is_between(0, 100).all()
    assert dict(scores.group_by("band").len().iter_rows()) == {"high": 100, "medium": 300, "low": 600}
    assert sorted(scores["decile"].unique().to_list()) == list(range(1, 11))
    assert (scores["expires_at"] == scored_at + timedelta(days=7)).all()
    top = scores.sort("propensity", descending=True).row(0, named=True)
    assert "emailsClicked_7d" in (top["reason_1"], top["reason_2"], top["reason_3"])
    assert all(scores[f"reason_{k}"].is_in(list(FEATURES)).all() for k in (1, 2, 3))


def test_band_policies_choose_thresholds_from_held_out_gains(model):
    bands, expected = choose_bands(BandPolicy(), model.holdout)
    assert (bands.high_min_percentile, bands.medium_min_percentile) == (90, 60)
    assert expected["high"] > expected["medium"] > expected["low"]
    assert choose_bands(BandPolicy("reach", reach=0.05), model.holdout)[0].high_min_percentile == 95
    strict, rates = choose_bands(BandPolicy("precision", target_precision=0.5), model.holdout)
    assert rates["high"] >= 0.5 - 0.05 and strict.high_min_percentile >= 50
    with pytest.raises(ValueError, match="target_precision"):
        choose_bands(BandPolicy("precision", target_precision=0.999), model.holdout)


def test_bands_must_be_ordered():
    with pytest.raises(ValueError, match="medium_min_percentile"):
        Bands(high_min_percentile=50, medium_min_percentile=60)


def test_path_credits_add_up_to_the_raw_score_and_equal_shap_on_stumps():
    import lightgbm as lgb

    from aep_assets.ml.explain import leaf_credits, path_contributions, reason_codes

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(size=4000) > 0).astype(int)
    deep = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 1}, lgb.Dataset(x, y), 30)
    credits = leaf_credits(deep)
    contrib = path_contributions(deep, x, credits)
    assert np.allclose(contrib.sum(axis=1) + sum(t.root_value for t in credits), deep.predict(x, raw_score=True))
    stumps = lgb.train({"objective": "binary", "num_leaves": 2, "verbose": -1, "seed": 1}, lgb.Dataset(x, y), 30)
    assert np.allclose(path_contributions(stumps, x), stumps.predict(x, pred_contrib=True)[:, :-1])
    names = tuple(f"f{i}" for i in range(5))
    assert list(reason_codes(stumps, x, names, method="path")[0]) == list(reason_codes(stumps, x, names)[0])
    with pytest.raises(ValueError, match="reason_method"):
        reason_codes(deep, x, names, method="lime")
