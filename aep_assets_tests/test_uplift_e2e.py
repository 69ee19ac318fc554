"""The uplift loop end to end at 70,000 profiles, on the demo's heterogeneous planted effect: the uplift model
against the oracle's true uplift on the same held-out profiles, the persuadable audience written back and
activated with its control group, and after one more window, uplift targeting against propensity targeting."""

import polars as pl
import pytest

from aep_assets.ml.feature_set import ID
from aep_assets.pipeline.handoff import UpliftActivation, UpliftScoreRun

from .demo import NAMES
from .uplift_loop import uplift_loop

PROFILES = 70_000  # the fewest, in tens of thousands, with control profiles enough to train (9,521 of 8,356)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return uplift_loop(tmp_path_factory.mktemp("uplift"), profiles=PROFILES, planted=0.1, windows=2)


def test_before_any_window_closes_nothing_is_learnt_or_steered(world):
    first = world["first"]
    assert first["model"]["status"].startswith("no window of an activation")
    assert first["gate"].passed and first["scores"]["gated"] is False
    assert first["audiences"]["status"].startswith("no uplift model has beaten random targeting")


def test_the_model_finds_most_of_the_oracles_qini(world):
    model = world["model"]
    assert model["sizing_enough"] and model["sizing_control"] >= model["sizing_control_needed"]
    assert model["gated"] and world["gate"].passed
    assert model["model_qini_ci_low"] > 0
    assert model["model_qini"] >= 0.7 * model["oracle_qini"]
    assert model["model_qini"] > model["propensity_qini_ci_high"]  # better than ranking by propensity
    for top in (10, 20, 30):
        assert model[f"model_uplift_top{top}_ci_low"] > 0
    assert model["qini_plot"].startswith("![Uplift curves](data:image/png;base64,")


def test_persuadables_are_written_back_and_activated_without_their_controls(world):
    storage, scores, audiences = world["storage"], world["scores"], world["audiences"]
    run = UpliftScoreRun.load(storage, NAMES.uplift_scores_pointer, asset="uplift_scores")
    frame = storage.read_parquet([run.key])
    persuadable = frame.filter(pl.col("uplift_band") == "persuadable")
    in_audience = frame.filter(pl.col("group").is_not_null()).height
    assert scores["gated"] and persuadable.height == scores["persuadable"] == int(0.2 * in_audience)
    assert persuadable["uplift"].min() > 0 and persuadable["uplift"].min() >= frame.filter(
        pl.col("uplift_band") == "other")["uplift"].max()
    # the segments in AEP count what the scores say: treatment members activated, controls held out
    treated = set(persuadable.filter(pl.col("group") == "treatment")[ID])
    controls = set(persuadable.filter(pl.col("group") == "control")[ID])
    assert audiences["persuadable_size"] == len(treated) and audiences["persuadable_control_size"] == len(controls)
    aep = world["aep"]  # the model's own, marked dataset, one row per scored profile
    assert aep["uplift_dataset"]["tags"]["aep_assets/owner"] == ["cmle_demo"] and aep["uplift_rows"] == frame.height
    assert all(s is not None for s in aep["segments"].values())
    activation = UpliftActivation.load(storage, NAMES.uplift_activation(run.scored_at), asset="persuadable")
    members = set(activation.identities(storage))
    assert members == treated and not members & controls and activation.members == len(treated)


def test_uplift_targeting_beats_propensity_targeting_of_the_same_size(world):
    c = world["comparison"]
    assert c["runs_compared"] == 1 and c["answer"].startswith("yes")
    assert c["persuadable_treated"] + c["persuadable_control"] == c["audience_size"]
    assert c["propensity_treated"] + c["propensity_control"] == c["audience_size"]
    assert c["difference_ci_low"] > 0 and c["persuadable_uplift_ci_low"] > c["propensity_uplift"]
    for who in ("persuadable", "propensity"):  # each realised what its members' true uplift says
        assert c[f"{who}_uplift_ci_low"] <= c[f"true_uplift_{who}"] <= c[f"{who}_uplift_ci_high"], who
