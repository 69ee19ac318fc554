"""The code location loads, and its graph has the keys, groups and lineage users rely on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from aep_assets.assets.features import FeatureConfig
from aep_assets.assets.model import ModelConfig
from aep_assets.definitions import defs
from aep_assets.resources import AdobeAEP, LocalSandboxAEP, LocalStorageResource, build_resources

from .demo import spec as feature_set_spec

D = "cmle_demo/"
EXPECTED = {
    D + "xdm_schemas": ("cmle_demo_platform", set()),
    D + "synthetic_profiles": ("cmle_demo_source", {D + "xdm_schemas"}),
    D + "synthetic_events": ("cmle_demo_source", {D + "xdm_schemas"}),
    D + "simulation_truth": ("cmle_demo_source", {D + "synthetic_events", D + "training_export"}),
    D + "eda_report": ("cmle_demo_features", {D + "synthetic_events"}),
    D + "feature_table": ("cmle_demo_features", {D + "synthetic_events", D + "synthetic_profiles"}),
    D + "training_export": ("cmle_demo_features", {D + "feature_table"}),
    D + "propensity_model": ("cmle_demo_model", {D + "training_export", D + "simulation_truth"}),
    D + "scoring_features": ("cmle_demo_scoring", {D + "synthetic_events", D + "synthetic_profiles",
                                                   D + "propensity_model"}),
    D + "propensity_scores": ("cmle_demo_scoring", {D + "scoring_features", D + "propensity_model"}),
    D + "aep_score_dataset": ("cmle_demo_activation", {D + "propensity_scores"}),
    D + "propensity_audiences": ("cmle_demo_activation", {D + "aep_score_dataset"}),
    D + "audience_activation": ("cmle_demo_activation", {D + "propensity_audiences", D + "aep_score_dataset"}),
    D + "score_outcomes": ("cmle_demo_outcomes", {D + "aep_score_dataset", D + "synthetic_events",
                                                 D + "audience_activation"}),
    D + "audience_uplift": ("cmle_demo_outcomes", {D + "score_outcomes", D + "audience_activation"}),
    D + "uplift_model": ("cmle_demo_uplift", {D + "score_outcomes", D + "audience_activation"}),
    D + "uplift_scores": ("cmle_demo_uplift", {D + "uplift_model", D + "aep_score_dataset"}),
    D + "persuadable_audiences": ("cmle_demo_uplift", {D + "uplift_scores", D + "audience_activation"}),
    D + "targeting_comparison": ("cmle_demo_uplift", {D + "score_outcomes", D + "persuadable_audiences"}),
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_the_code_location_loads_without_the_model_libraries():
    """Every process that loads the code location pays for what it imports: the UI's code server, each run the UI
    launches, every ``dg`` command. LightGBM, scikit-learn, SciPy and matplotlib load in the steps that use them."""
    code = ("import sys, aep_assets.definitions; "
            "print(' '.join(m for m in ('lightgbm', 'sklearn', 'scipy', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    got = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        got[key.to_user_string()] = (node.group_name, {p.to_user_string() for p in node.parent_keys})
    assert got == EXPECTED


def test_every_asset_has_a_description_and_kinds():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.kinds, key


def test_resources_default_to_the_local_sandbox_and_directory():
    resources = build_resources({})
    assert isinstance(resources["aep"], LocalSandboxAEP)
    assert isinstance(resources["storage"], LocalStorageResource)
    assert resources["aep"].landing_zone_dir.endswith("landing-zone")


def test_aep_credentials_switch_to_real_aep_with_the_same_keys():
    env = {"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s", "AEP_ORG_ID": "o@AdobeOrg", "AEP_SANDBOX_NAME": "dev"}
    resources = build_resources(env)
    assert isinstance(resources["aep"], AdobeAEP) and resources["aep"].sandbox_name == "dev"
    assert set(resources) == set(build_resources({}))


def test_real_aep_needs_the_sandbox_named():
    with pytest.raises(ValueError, match="AEP_SANDBOX_NAME is not set"):
        build_resources({"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s", "AEP_ORG_ID": "o@AdobeOrg"})


def test_bad_config_names_the_field_the_value_and_the_fix():
    spec = feature_set_spec()
    named = r"train_cutoff \(for cutoffs.train\).*'cutoffs.train' = 'yesterday'.*2026-10-29"
    with pytest.raises(ValueError, match=named):
        FeatureConfig(train_cutoff="yesterday").apply(spec)
    split = FeatureConfig(train_cutoff="2026-10-01", test_cutoff="2026-10-29").apply(spec).temporal_split()
    assert split.test_cutoff.isoformat() == "2026-10-29T00:00:00+00:00" and split.horizon_days == 14
    with pytest.raises(ValueError, match="overlap"):
        FeatureConfig(train_cutoff="2026-10-20", test_cutoff="2026-10-29").apply(spec).temporal_split()


def test_run_config_overrides_yaml_keys_in_one_place_and_only_for_that_run():
    spec = feature_set_spec()
    run = ModelConfig(auc_floor=0.5, champion_tolerance=0.2).apply(spec)
    assert (run.gates.auc_floor.min, run.gates.champion.tolerance) == (0.5, 0.2)
    assert run.gates.calibration.max_ece == spec.gates.calibration.max_ece  # not overridden: the YAML's
    assert spec.gates.auc_floor.min == 0.65  # the YAML itself is untouched
    assert FeatureConfig(horizon_days=0).apply(spec).goal.outcome_days == spec.goal.outcome_days
    assert ModelConfig(champion_tolerance=0.0).apply(spec).gates.champion.tolerance == 0.0  # given, not a default
    with pytest.raises(ValueError, match=r"max_ece \(for gates.calibration.max_ece\).*gates.calibration.max_ece = 2"):
        ModelConfig(max_ece=2.0).apply(spec)


def test_the_new_events_sensor_is_on_and_retraining_is_off_by_default():
    sensor = defs.resolve_sensor_def("cmle_demo_new_events_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "cmle_demo_rescore"
    schedule = defs.resolve_schedule_def("cmle_demo_weekly_retraining")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "cmle_demo_retrain"


def test_the_rescore_job_covers_scoring_through_activation_and_the_uplift_scores():
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("cmle_demo_rescore")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {D + a for a in ("scoring_features", "propensity_scores", "aep_score_dataset",
                                    "propensity_audiences", "audience_activation", "uplift_scores",
                                    "persuadable_audiences")}
    assert all(graph.get(dg.AssetKey.from_user_string(k)).group_name in
               ("cmle_demo_scoring", "cmle_demo_activation", "cmle_demo_uplift") for k in keys)


def test_outcome_tracking_has_its_own_job_and_sensor_and_stays_out_of_retraining():
    outcomes = defs.resolve_job_def("cmle_demo_outcomes")
    assert {k.to_user_string() for k in outcomes.asset_layer.selected_asset_keys} == {
        D + "score_outcomes", D + "audience_uplift", D + "uplift_model", D + "targeting_comparison"}
    retrain = defs.resolve_job_def("cmle_demo_retrain")
    assert not {k.path[-1] for k in retrain.asset_layer.selected_asset_keys} & {
        "score_outcomes", "audience_uplift", "uplift_model", "targeting_comparison"}
    sensor = defs.resolve_sensor_def("cmle_demo_outcome_window_sensor")
    assert sensor.job_name == "cmle_demo_outcomes" and sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_whole_graph_job_is_named_after_the_model():
    job = defs.resolve_job_def("cmle_demo")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == set(EXPECTED)


def test_dg_checks_the_component_yaml_and_lists_every_models_assets():
    root = Path(__file__).resolve().parents[1]
    dg_cli = str(Path(sys.executable).with_name("dg"))
    checked = subprocess.run([dg_cli, "check", "defs"], cwd=root, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All component YAML validated successfully" in checked.stdout + checked.stderr
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], cwd=root, capture_output=True, text=True,
                            timeout=300)
    keys = {a["asset_key"] for a in json.loads(listed.stdout)["assets"]}
    assert keys == set(EXPECTED)


def test_a_bad_model_file_names_the_file_the_field_and_the_fix(tmp_path, monkeypatch):
    from aep_assets.definitions import build_definitions

    (tmp_path / "broken.yaml").write_text("type: aep_assets.PropensityModel\nattributes:\n  name: Shop-1\n"
                                          "  goal: {condition: \"eventType = 'commerce.purchases'\"}\n"
                                          "  events: {datasets: [events]}\n")
    monkeypatch.setenv("AEP_ASSETS_MODELS", str(tmp_path))
    spec = _error_spec(build_definitions(), "broken")
    assert "broken.yaml: attributes.name: name 'Shop-1' must be lowercase" in spec.description
    assert "'cdnow'" in spec.metadata["error"]


def _error_spec(defs: dg.Definitions, name: str) -> dg.AssetSpec:
    key = dg.AssetKey(["model_errors", name])
    return next(s for s in defs.resolve_assets_def(key).specs if s.key == key)


def _examples(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / f"{name}.yaml").write_text((Path(__file__).parents[1] / f"examples/models/{name}.yaml").read_text())


def test_a_broken_model_file_stops_no_other_model_and_is_reported_with_its_line(tmp_path, monkeypatch):
    from aep_assets.definitions import build_definitions

    _examples(tmp_path, "cdnow")
    (tmp_path / "typo.yaml").write_text("type: aep_assets.PropensityModel\nattributes:\n  name: typo\n"
                                        "  goal: {condition: \"eventType = 'x'\"\n  events: {datasets: [e]}\n")
    monkeypatch.setenv("AEP_ASSETS_MODELS", str(tmp_path))
    defs = build_definitions()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"cdnow/propensity_scores", "cmle_demo/propensity_scores", "model_errors/typo"} <= keys
    error = _error_spec(defs, "typo").metadata["error"]
    assert str(tmp_path / "typo.yaml") + ", line 5" in error and "Traceback" not in error
    env = {**os.environ, "AEP_ASSETS_MODELS": str(tmp_path)}
    cli = subprocess.run([sys.executable, "-m", "aep_assets.model_files", "typo"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert cli.returncode == 2 and "typo.yaml, line 5" in cli.stderr and "Traceback" not in cli.stderr
    assert len(cli.stderr.splitlines()) <= 3
    fine = subprocess.run([sys.executable, "-m", "aep_assets.model_files", "cdnow"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert fine.returncode == 0


def test_the_demo_stays_out_of_a_code_location_that_serves_a_real_org(tmp_path, monkeypatch):
    from aep_assets.definitions import build_definitions

    _examples(tmp_path, "cdnow")
    for name, value in {"AEP_ASSETS_MODELS": str(tmp_path), "AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s",
                        "AEP_ORG_ID": "o@AdobeOrg", "AEP_SANDBOX_NAME": "dev"}.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "cdnow/propensity_scores" in keys and not any(k.startswith("cmle_demo/") for k in keys)
    assert all(not s.name.startswith("cmle_demo") for s in defs.sensors or [])
    monkeypatch.setenv("AEP_ASSETS_DEMO", "1")
    assert "cmle_demo/propensity_scores" in {k.to_user_string()
                                             for k in build_definitions().resolve_asset_graph().get_all_asset_keys()}


def test_exports_are_read_from_the_data_landing_zone_against_real_aep_by_default():
    from aep_assets.resources import LandingZoneExportsResource

    env = {"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s", "AEP_ORG_ID": "o@AdobeOrg", "AEP_SANDBOX_NAME": "dev"}
    assert isinstance(build_resources(env)["storage"], LandingZoneExportsResource)
    assert not isinstance(build_resources({**env, "AEP_EXPORTS": "storage"})["storage"], LandingZoneExportsResource)
    assert not isinstance(build_resources({})["storage"], LandingZoneExportsResource)


def test_a_model_learns_uplift_by_default_only_with_control_groups_and_the_write_back():
    from aep_assets.components.propensity_model import build_model_defs

    spec = feature_set_spec()
    assert spec.holdout.share == 0.2 and spec.learns_uplift
    data = spec.model_dump()
    without = spec.model_validate({**data, "holdout": {**data["holdout"], "share": 0.0}})
    dry = spec.model_validate({**data, "write_back": {"enabled": False}})
    assert not without.learns_uplift and not dry.learns_uplift
    keys = {k.path[-1] for a in build_model_defs(without).assets for k in a.keys}
    assert "score_outcomes" in keys and not keys & {"uplift_model", "uplift_scores", "persuadable_audiences"}
    off = spec.model_validate({**data, "uplift": {"enabled": False}})
    assert not off.learns_uplift
    with pytest.raises(ValueError, match=r"uplift.enabled is true.*holdout.share = 0.0.*set holdout.share above 0"):
        spec.model_validate({**data, "holdout": {**data["holdout"], "share": 0.0}, "uplift": {"enabled": True}})
