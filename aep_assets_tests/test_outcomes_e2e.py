"""Outcome tracking and audience uplift end to end: the demo on a real Dagster instance and the sandbox over
HTTP, the simulated world advanced by the outcome window (with and without a planted campaign effect), the
outcome-window sensor, and score_outcomes and audience_uplift against what the simulation planted."""

import io
import math

import dagster as dg
import polars as pl
import pytest

from aep_assets.ml.feature_set import ID
from aep_assets.ml.outcomes import compare_outcomes
from aep_assets.pipeline.handoff import ActivationRun
from aep_assets.pipeline.outcomes import evaluated_runs, scoring_runs
from aep_assets.resources import build_resources
from aep_assets.storage import LocalStorage

from .demo import ALL_ASSETS, DEMO, NAMES, ops, outcome_window_sensor, simulate_new_events

N_PROFILES = 20_000
PLANTED = 0.08  # a few points of conversion rate for activated members of the high band
SHARE = 0.2  # the demo's holdout.share
RUN_CONFIG = ops({"synthetic_profiles": {"config": {"n_profiles": N_PROFILES, "seed": 42, "as_of": "2026-06-01"}},
                  "feature_table": {"config": {"train_cutoff": "2026-05-04", "test_cutoff": "2026-05-18",
                                               "horizon_days": 14}}})
OUTCOME_KEYS = [dg.AssetKey([DEMO, "score_outcomes"]), dg.AssetKey([DEMO, "audience_uplift"])]


def _metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey([DEMO, asset]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _check(instance, name: str):
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey([DEMO, "score_outcomes"]), name)])
    return next(iter(record.values())).event.dagster_event.event_specific_data


def _tick(instance, resources):
    sensor = dg.build_sensor_context(instance=instance, resources={"storage": resources["storage"]})
    return outcome_window_sensor()(sensor)


def _world(root, planted: float):
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    with dg.instance_for_test() as instance:
        assert dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG).success
        before = {"sensor": _tick(instance, resources), "outcomes": _metadata(instance, "score_outcomes"),
                  "check": _check(instance, "realised_within_expected")}
        advanced = simulate_new_events().execute_in_process(
            instance=instance, resources=resources,
            run_config=ops({"continue_events": {"config": {"outcome_window": True, "planted_uplift": planted,
                                                           "planted_effect": "uniform"}}}))
        assert advanced.success
        landed = advanced.asset_materializations_for_node(f"{DEMO}__continue_events")[-1].metadata
        request = _tick(instance, resources)
        assert dg.materialize(ALL_ASSETS, selection=OUTCOME_KEYS, resources=resources, instance=instance).success
        yield {"storage": LocalStorage(root / "storage"), "before": before, "request": request,
               "after": _tick(instance, resources), "landed": {k: v.value for k, v in landed.items()},
               "outcomes": _metadata(instance, "score_outcomes"), "uplift": _metadata(instance, "audience_uplift"),
               "check": _check(instance, "realised_within_expected")}


@pytest.fixture(scope="module")
def no_effect(tmp_path_factory):
    yield from _world(tmp_path_factory.mktemp("outcomes_none"), 0.0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    yield from _world(tmp_path_factory.mktemp("outcomes_planted"), PLANTED)


def test_nothing_is_checked_before_a_window_closes(no_effect):
    before = no_effect["before"]
    assert before["outcomes"]["evaluated_runs"] == 0 and before["outcomes"]["runs_waiting"] == 1
    assert before["outcomes"]["next_window_closes"] == "2026-06-15T00:00:00+00:00"
    assert before["check"].passed
    assert isinstance(before["sensor"], dg.SkipReason) and "2026-06-15" in before["sensor"].skip_message


def test_the_sensor_asks_once_when_the_window_closes(no_effect):
    request = no_effect["request"]
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("outcomes-")
    assert request.tags["aep_assets/trigger"] == "outcome_window_closed"
    assert isinstance(no_effect["after"], dg.SkipReason)  # the run was looked back at: nothing more to do


def test_calibrated_scores_come_true_within_their_intervals(no_effect):
    meta, check = no_effect["outcomes"], no_effect["check"]
    assert meta["evaluated_runs"] == 1 and meta["window_end"] == "2026-06-15T00:00:00+00:00"
    assert meta["judged_on"] == "the control groups"  # the audiences were activated: only controls are untouched
    assert check.passed, check.metadata
    (outcome,) = evaluated_runs(no_effect["storage"], NAMES)
    assert all(row["inside"] for row in outcome.by_decile) and len(outcome.by_decile) == 10
    assert abs(outcome.calibration_in_the_large) < 0.01 and outcome.roc_auc > 0.7
    assert meta["expected_vs_realised"].startswith("![Expected vs realised](data:image/png;base64,")
    assert meta["across_runs"].startswith("![Across runs](data:image/png;base64,")


def test_doubled_scores_would_have_warned(no_effect):
    storage = no_effect["storage"]
    (outcome,) = evaluated_runs(storage, NAMES)
    (run,) = scoring_runs(storage, NAMES)
    frame = storage.read_parquet([outcome.outcomes_key])
    controls = frame.filter(pl.col("group") == "control").with_columns(pl.col("propensity") * 2)
    doubled = compare_outcomes(controls, calibration_rows=run.calibration_rows)
    assert not doubled.calibrated and "decile 10" in doubled.outside


def test_controls_are_held_out_of_every_activated_file(no_effect):
    storage = no_effect["storage"]
    (run,) = scoring_runs(storage, NAMES)
    scores = storage.read_parquet([run.key])
    activation = ActivationRun.load(storage, NAMES.activation_run(run.scored_at), asset="audience_activation")
    for band, key in activation.files.items():
        members = set(pl.read_csv(io.BytesIO(storage.read_bytes(key)), schema_overrides={"identity": pl.Utf8})[
            "identity"])
        in_band = scores.filter(pl.col("band") == band)
        controls = set(in_band.filter(pl.col("group") == "control")[ID])
        assert members and not members & controls
        assert members == set(in_band.filter(pl.col("group") == "treatment")[ID])
        share = len(controls) / in_band.height
        assert abs(share - SHARE) < 4 * math.sqrt(SHARE * (1 - SHARE) / in_band.height), (band, share)


def test_no_planted_effect_measures_no_uplift(no_effect):
    uplift = no_effect["uplift"]
    assert no_effect["landed"]["campaign_conversions"] == 0
    for band in ("high", "medium", "low"):
        assert uplift[f"{band}_uplift_ci_low"] <= 0 <= uplift[f"{band}_uplift_ci_high"], band
        assert uplift[f"{band}_control"] > 0 and 0 <= uplift[f"{band}_p_value"] <= 1


def test_a_planted_effect_is_recovered(planted):
    uplift, landed = planted["uplift"], planted["landed"]
    assert landed["campaign_conversions"] > 0 and landed["treated_members"] == uplift["high_treated"]
    assert uplift["high_uplift_ci_low"] <= PLANTED <= uplift["high_uplift_ci_high"]
    assert uplift["high_uplift_ci_low"] > 0 and uplift["high_p_value"] < 0.05
    for band in ("medium", "low"):  # only the high band's activation had an effect
        assert uplift[f"{band}_uplift_ci_low"] <= 0 <= uplift[f"{band}_uplift_ci_high"], band
    assert uplift["uplift_plot"].startswith("![Uplift](data:image/png;base64,")


def test_a_campaign_effect_does_not_read_as_miscalibration(planted):
    """The campaign moved the high band's treated members; the forecast is judged on the controls."""
    assert planted["outcomes"]["judged_on"] == "the control groups" and planted["check"].passed
