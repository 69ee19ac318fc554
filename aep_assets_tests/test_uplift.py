"""The uplift learner, its evaluation and sizing, and the demo's heterogeneous campaign, on data whose true uplift
is known."""

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from aep_assets.ml.uplift import SIZING_TOP, XLearner, evaluate_ranking, size_learner
from aep_assets.simulation import SimulationConfig, simulate
from aep_assets.simulation.campaign import SEGMENTS, campaign_effect, uplift_truth
from aep_assets.simulation.continuation import Treatment, continue_simulation

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
FEATURES = ("x1", "x2", "x3", "x4")


def _trial(n: int, seed: int, effect: bool = True) -> dict:
    """A randomised campaign (four treated for each control) whose uplift depends on two of four features: +0.15
    where x1 and x2 are both positive, -0.05 where x3 > 1, nothing elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    base = 1 / (1 + np.exp(-(-2.2 + 0.8 * x[:, 0] + 0.5 * x[:, 3])))
    tau = (0.15 * ((x[:, 0] > 0) & (x[:, 1] > 0)) - 0.05 * (x[:, 2] > 1)) if effect else np.zeros(n)
    treated = rng.random(n) < 0.8
    y = (rng.random(n) < np.clip(base + tau * treated, 0, 1)).astype(int)
    return {"x": x, "treated": treated, "y": y, "tau": tau, "base": base}


@pytest.fixture(scope="module")
def planted():
    data = _trial(60_000, seed=1)
    fit = np.arange(60_000) < 30_000
    learner = XLearner.fit(data["x"][fit], data["treated"][fit], data["y"][fit], FEATURES)
    held = {k: v[~fit] for k, v in data.items()}
    return learner, held


def test_the_learner_ranks_profiles_by_their_true_uplift(planted):
    learner, held = planted
    predicted = learner.predict(held["x"])
    model = evaluate_ranking(predicted, held["treated"], held["y"])
    oracle = evaluate_ranking(held["tau"], held["treated"], held["y"])
    propensity = evaluate_ranking(held["base"], held["treated"], held["y"])
    assert model.beats_random and model.qini >= 0.7 * oracle.qini
    assert model.qini > propensity.qini
    # the top fifth is mostly the +0.15 cell, and its measured uplift says so with its interval
    top = model.top[0.2]
    assert top.ci_low > 0.08 and top.ci_low <= 0.15 <= top.ci_high + 0.02
    assert np.corrcoef(predicted, held["tau"])[0, 1] > 0.7


def test_a_learner_round_trips_through_json(planted):
    learner, held = planted
    again = XLearner.from_json(json.loads(learner.dumps()))
    assert np.array_equal(again.predict(held["x"][:1000]), learner.predict(held["x"][:1000]))
    assert again.features == FEATURES and again.treated_share == learner.treated_share


def test_with_no_effect_the_gate_seldom_lets_a_model_through():
    passed = 0
    for seed in range(8):
        data = _trial(16_000, seed=100 + seed, effect=False)
        fit = np.arange(16_000) < 8_000
        learner = XLearner.fit(data["x"][fit], data["treated"][fit], data["y"][fit], FEATURES, seed=seed)
        passed += evaluate_ranking(learner.predict(data["x"][~fit]), data["treated"][~fit], data["y"][~fit],
                                   seed=seed).beats_random
    assert passed <= 1  # a 95 % interval: about one in forty passes by chance


def test_random_targeting_has_no_qini_and_the_curve_ends_at_the_average_effect():
    data = _trial(20_000, seed=3)
    flat = evaluate_ranking(np.zeros(20_000), data["treated"], data["y"], resamples=50)
    assert flat.qini == pytest.approx(0.0, abs=1e-12)  # every tie in one block: the random line itself
    t, y = data["treated"], data["y"]
    assert flat.curve.gain[-1] == pytest.approx(y[t].mean() - y[~t].mean())
    assert flat.qini_ci_low <= 0 <= flat.qini_ci_high
    best, worst = (evaluate_ranking(s, t, y, resamples=20).qini for s in (data["tau"], -data["tau"]))
    assert best > 0 > worst


def test_the_learner_needs_goals_in_both_groups():
    data = _trial(2_000, seed=4)
    with pytest.raises(ValueError, match="control profiles have 0 goals"):
        XLearner.fit(data["x"], data["treated"], np.where(data["treated"], data["y"], 0), FEATURES)


def test_sizing_says_how_many_control_profiles_the_learner_needs():
    sized = size_learner(60_000, 15_000, 0.08, evaluation_share=0.5, target_uplift=0.02)
    assert sized.enough and sized.detectable_uplift < 0.02
    at_need = size_learner(4 * sized.control_needed, sized.control_needed, 0.08, evaluation_share=0.5,
                           target_uplift=0.02)
    assert at_need.detectable_uplift == pytest.approx(0.02, rel=1e-3) and at_need.enough
    short = size_learner(8_000, 2_000, 0.08, evaluation_share=0.5, target_uplift=0.02)
    assert not short.enough and short.control_needed == sized.control_needed
    assert short.detectable_uplift > 0.02 and SIZING_TOP == 0.3
    assert math.isinf(size_learner(100, 0, 0.08, evaluation_share=0.5, target_uplift=0.02).detectable_uplift)


@pytest.fixture(scope="module")
def campaign():
    """A simulated world where four in five profiles are activated at AS_OF and respond by their segment."""
    sim = simulate(SimulationConfig(n_profiles=30_000, seed=4, as_of=AS_OF))
    effect = campaign_effect(sim, AS_OF, 0.1)
    truth = uplift_truth(sim, AS_OF, 14, effect)
    rows = np.nonzero(np.random.default_rng(9).random(sim.profiles.height) < 0.8)[0]
    treatment = Treatment(rows, 0.1, AS_OF, timedelta(days=14), lift=effect.lift[rows], damp=effect.damp[rows])
    cont = continue_simulation(sim, timedelta(days=14), seed=5, treatment=treatment)
    window = (pl.col("conversion_time") > AS_OF) & (pl.col("conversion_time") <= AS_OF + timedelta(days=14))
    outcome = cont.simulation.truth.select("userid", window.fill_null(False).alias("y"))
    treated = np.zeros(sim.profiles.height, bool)
    treated[rows] = True
    frame = truth.with_columns(pl.Series("treated", treated)).join(outcome, on="userid").filter(
        pl.col("own_probability").is_not_nan())
    return effect, frame, cont


def test_the_campaign_segments_follow_what_the_features_see(campaign):
    effect, frame, _ = campaign
    shares = np.bincount(effect.segment, minlength=len(SEGMENTS)) / effect.segment.size
    assert all(0.03 < s < 0.6 for s in shares), dict(zip(SEGMENTS, shares, strict=True))
    by = {s: frame.filter(pl.col("segment") == s) for s in SEGMENTS}
    assert (by["persuadable"]["true_uplift"] > 0).all() and (by["do_not_disturb"]["true_uplift"] <= 0).all()
    assert (by["sure_thing"]["true_uplift"] == 0).all() and (by["lost_cause"]["true_uplift"] == 0).all()


def test_each_segment_realises_its_true_uplift(campaign):
    _, frame, cont = campaign
    assert cont.treated_conversions > 0 and cont.prevented_conversions > 0
    for segment in SEGMENTS:
        part = frame.filter(pl.col("segment") == segment)
        t, c = part.filter(pl.col("treated")), part.filter(~pl.col("treated"))
        realised = t["y"].mean() - c["y"].mean()
        se = math.sqrt(t["y"].var() / t.height + c["y"].var() / c.height)
        assert abs(realised - part["true_uplift"].mean()) < 4 * se + 0.003, (segment, realised, se)


def test_no_planted_uplift_changes_nobody():
    effect = campaign_effect(simulate(SimulationConfig(n_profiles=2_000, seed=4, as_of=AS_OF)), AS_OF, 0.0)
    assert not effect.lift.any() and not effect.damp.any()


def test_the_uplift_curve_is_scikit_uplifts():
    """At each block of tied scores, the curve equals scikit-uplift's uplift_curve (its incremental goals, here
    per profile)."""
    import warnings

    from sklift.metrics import uplift_curve

    from aep_assets.ml.uplift import Ranked

    data = _trial(20_000, seed=6)
    score = np.round(data["x"][:, 0] * 4)  # many ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its cumulative sum's deprecation in scikit-learn
        targeted, gain = uplift_curve(data["y"], score, data["treated"])
    at, ours = Ranked(score, data["treated"], data["y"]).blocks()
    assert np.allclose(at, targeted / 20_000) and np.allclose(ours, gain / 20_000)
