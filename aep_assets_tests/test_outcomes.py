"""Outcome tracking and holdout statistics, on data whose truth is known: calibrated and miscalibrated
scores, control groups, uplift tests and their sizing."""

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2_contingency

from aep_assets.ml.holdout import (
    CONTROL,
    TREATMENT,
    HoldoutGroups,
    assign_groups,
    control_share_needed,
    detectable_uplift,
    measure_uplift,
    size_control_group,
    unit_hash,
    unit_hashes,
)
from aep_assets.ml.outcomes import compare_outcomes
from aep_assets.pipeline.audiences import holdout_groups


def _scores(n: int, seed: int, scale: float = 1.0) -> pl.DataFrame:
    """Scores with outcomes drawn from them, then (``scale`` != 1) reported ``scale`` times too high."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 20, size=n)
    converted = rng.random(n) < p
    pct = np.argsort(np.argsort(p)) * 100 // n
    band = np.where(pct >= 90, "high", np.where(pct >= 60, "medium", "low"))
    return pl.DataFrame({"profile_id": [f"id{i}" for i in range(n)], "propensity": np.minimum(p * scale, 1.0),
                         "decile": pct // 10 + 1, "band": band, "converted": converted})


def test_calibrated_scores_fall_within_their_expected_intervals():
    result = compare_outcomes(_scores(50_000, seed=1))
    assert result.calibrated, result.outside
    assert abs(result.calibration_in_the_large) < 0.003 and result.roc_auc > 0.7
    assert result.by_decile.height == 10 and result.by_band["band"].to_list() == ["high", "low", "medium"]


def test_doubled_scores_leave_their_intervals():
    result = compare_outcomes(_scores(50_000, seed=1, scale=2.0))
    assert not result.calibrated
    assert "band high" in result.outside and "decile 10" in result.outside
    assert result.calibration_in_the_large < -0.02


def test_calibration_uncertainty_widens_the_intervals():
    narrow = compare_outcomes(_scores(20_000, seed=2))
    wide = compare_outcomes(_scores(20_000, seed=2), calibration_rows=2_000)
    width = (pl.col("expected_high") - pl.col("expected_low")).alias("w")
    assert (wide.by_decile.select(width)["w"] > narrow.by_decile.select(width)["w"]).all()


def test_assignment_is_stable_per_audience_and_matches_the_share():
    ids = [f"ecid-{i}" for i in range(40_000)]
    high = assign_groups(ids, ["high"] * len(ids), 0.2, "m")
    assert (assign_groups(ids, ["high"] * len(ids), 0.2, "m") == high).all()  # the same on every rescore
    share = float(np.mean(high == CONTROL))
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(ids))
    medium = assign_groups(ids, ["medium"] * len(ids), 0.2, "m")
    both = float(np.mean((high == CONTROL) & (medium == CONTROL)))
    assert abs(both - 0.04) < 4 * math.sqrt(0.04 * 0.96 / len(ids))  # audiences' groups are independent


def test_assignment_does_not_depend_on_the_score():
    scores = _scores(40_000, seed=3).with_columns(pl.lit("high").alias("band"))
    grouped = holdout_groups(scores, HoldoutGroups(0.25, "model"))
    top = grouped.filter(pl.col("decile") == 10)["group"]
    bottom = grouped.filter(pl.col("decile") == 1)["group"]
    table = [[(top == CONTROL).sum(), (top != CONTROL).sum()], [(bottom == CONTROL).sum(), (bottom != CONTROL).sum()]]
    assert chi2_contingency(table).pvalue > 0.001
    unscored = holdout_groups(scores.head(3).with_columns(pl.lit("converted").alias("band")),
                              HoldoutGroups(0.25, "m"))
    assert unscored["group"].to_list() == [None, None, None]  # converted markers belong to no audience


def test_the_hashes_of_a_whole_column_are_each_rows_own():
    """The groups a scoring run publishes must be the ones a merge or an audience computes again, row by row or a
    column at once: the same SHA-256 bits, also for identities and audiences beyond ASCII."""
    ids = [f"ecid-{i}" for i in range(5_000)] + ["", "josé@exämple.com", "用户-1", "a\x1fb", None]
    audiences = (["high", "medium", "low", "hôch"] * 1_252)[:len(ids)]
    hashes = unit_hashes(ids, "model/", audiences)
    expected = [unit_hash(i, f"model/{a}") if i is not None else np.nan for i, a in zip(ids, audiences, strict=True)]
    assert np.array_equal(hashes, np.array(expected), equal_nan=True)
    assert np.array_equal(unit_hashes(pl.Series(ids[:-1]), "s"), [unit_hash(i, "s") for i in ids[:-1]])
    groups = assign_groups(pl.Series(ids), pl.Series(audiences), 0.3, "model")
    assert groups.tolist() == [None if i is None else CONTROL if h < 0.3 else TREATMENT
                               for i, h in zip(ids, expected, strict=True)]


def test_no_holdout_treats_everyone():
    groups = assign_groups(["a", "b", "c"], ["high", "low", None], 0.0, "m")
    assert groups.tolist() == ["treatment", "treatment", None]
    with pytest.raises(ValueError, match="holdout.share"):
        assign_groups(["a"], ["high"], 1.0, "m")


def test_uplift_interval_and_p_value():
    u = measure_uplift(8_000, 1_200, 2_000, 240)
    assert u.absolute == pytest.approx(0.15 - 0.12) and u.ci_low < 0.03 < u.ci_high
    assert u.relative == pytest.approx(0.25) and u.relative_ci_low < 0.25 < u.relative_ci_high
    expected = chi2_contingency([[1_200, 6_800], [240, 1_760]], correction=False).pvalue
    assert u.p_value == pytest.approx(expected, rel=1e-6)
    none = measure_uplift(8_000, 960, 2_000, 240)
    assert none.absolute == pytest.approx(0.0) and none.p_value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="holdout.share"):
        measure_uplift(100, 5, 0, 0)


def test_uplift_intervals_cover_a_planted_effect_at_their_rate():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(400):
        treated = rng.binomial(4_000, 0.13)
        control = rng.binomial(1_000, 0.10)
        u = measure_uplift(4_000, treated, 1_000, control)
        covered += u.ci_low <= 0.03 <= u.ci_high
    assert 0.92 <= covered / 400 <= 0.98


def test_sizing_round_trips():
    share = control_share_needed(20_000, 0.1, 0.02)
    assert 0 < share < 0.5
    assert detectable_uplift(20_000, 0.1, share) == pytest.approx(0.02, rel=1e-9)
    assert detectable_uplift(20_000, 0.1, share / 2) > 0.02  # a smaller control group detects less
    assert control_share_needed(500, 0.1, 0.01) is None  # too small to detect one point, however split
    sized = size_control_group(20_000, 0.1, 0.2, 0.02)
    assert sized.detectable_uplift < 0.02 and sized.share_needed == pytest.approx(share)


def test_the_plots_draw_a_decile_that_never_converted():
    """A Wilson interval at a rate of 0 ends a rounding error above it; the plot must still draw (it failed
    once on a second window at 3,000 profiles)."""
    from aep_assets.ml.plots import outcome_plot

    scores = _scores(3_000, seed=2).with_columns((pl.col("converted") & (pl.col("decile") > 1)).alias("converted"))
    by_decile = compare_outcomes(scores).by_decile
    assert by_decile.filter(pl.col("decile") == 1)["conversions"].item() == 0
    assert (by_decile["realised_rate"] - by_decile["realised_low"]).min() < 0  # what matplotlib refused
    assert outcome_plot(by_decile)
