"""The code location loads, and its graph has the keys, groups and lineage users rely on."""

import dagster as dg
import pytest

from aep_assets.assets.features import FeatureConfig
from aep_assets.definitions import defs
from aep_assets.resources import AdobeAEP, LocalSandboxAEP, LocalStorageResource, build_resources

EXPECTED = {
    "xdm_schemas": ("platform", set()),
    "synthetic_profiles": ("synthetic", {"xdm_schemas"}),
    "synthetic_events": ("synthetic", {"xdm_schemas"}),
    "simulation_truth": ("synthetic", {"synthetic_events", "training_export"}),
    "eda_report": ("features", {"synthetic_events"}),
    "feature_table": ("features", {"synthetic_events", "synthetic_profiles"}),
    "training_export": ("features", {"feature_table"}),
    "propensity_model": ("model", {"training_export", "simulation_truth"}),
    "scoring_features": ("scoring", {"synthetic_events", "synthetic_profiles", "propensity_model"}),
    "propensity_scores": ("scoring", {"scoring_features", "propensity_model"}),
    "aep_score_dataset": ("activation", {"propensity_scores"}),
    "propensity_audiences": ("activation", {"aep_score_dataset"}),
    "audience_activation": ("activation", {"propensity_audiences"}),
}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


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
    resources = build_resources({"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s", "AEP_ORG_ID": "o@AdobeOrg"})
    assert isinstance(resources["aep"], AdobeAEP)
    assert set(resources) == set(build_resources({}))


def test_bad_config_names_the_field_the_value_and_the_fix():
    with pytest.raises(ValueError, match=r"'train_cutoff' = 'yesterday'.*2026-10-29"):
        FeatureConfig(train_cutoff="yesterday").split()
    split = FeatureConfig(train_cutoff="2026-10-01", test_cutoff="2026-10-29").split()
    assert split.test_cutoff.isoformat() == "2026-10-29T00:00:00+00:00"
    with pytest.raises(ValueError, match="overlap"):
        FeatureConfig(train_cutoff="2026-10-20", test_cutoff="2026-10-29").split()


def test_the_new_events_sensor_is_on_and_retraining_is_off_by_default():
    sensor = defs.resolve_sensor_def("new_events_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == "rescore"
    schedule = defs.resolve_schedule_def("weekly_retraining")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "retrain"


def test_the_rescore_job_covers_scoring_through_activation():
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("rescore")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert keys == {"scoring_features", "propensity_scores", "aep_score_dataset", "propensity_audiences",
                    "audience_activation"}
    assert all(graph.get(dg.AssetKey(k)).group_name in ("scoring", "activation") for k in keys)
