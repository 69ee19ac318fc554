"""The whole graph through Dagster on a real instance, then the end state checked in the sandbox."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from aep_assets.resources import build_resources
from aep_assets.storage import LocalStorage
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .demo import ALL_ASSETS, EVENT_DATASET, NAMES, PROFILE_DATASET, SCORE_DATASET, SCORES_POINTER, ops

N_PROFILES = 2000
RUN_CONFIG = ops({"synthetic_profiles": {"config": {"n_profiles": N_PROFILES, "seed": 5,
                                                        "as_of": "2026-06-01"}},
                      "feature_table": {"config": {"train_cutoff": "2026-05-04", "test_cutoff": "2026-05-18",
                                                   "horizon_days": 14}},
                      "scoring_features": {"config": {"cutoff": "2026-06-01"}}})


def _materialize(resources: dict, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG)


def _metadata(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", key]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _active_rows(client, dataset_id: str) -> int:
    return sum(int(b["metrics"].get("outputRecordCount", 0))
               for b in client.catalog.iter_batches(dataset_id, status="success"))


def _inventory(client) -> dict:
    flows = client.flows.list_all("flows")
    return {"datasets": sorted(d["name"] for d in client.catalog.iter_datasets()),
            "schemas": sorted(s["title"] for s in client.session.json(
                "GET", "/data/foundation/schemaregistry/tenant/schemas",
                headers={"Accept": "application/vnd.adobe.xed-id+json"})["results"]),
            "flows": len(flows), "flow_names": sorted(f["name"].rsplit(" ", 1)[0] for f in flows),
            "segments": sorted(s["name"] for s in client.session.json(
                "GET", "/data/core/ups/segment/definitions")["segments"])}


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    states = []
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = _materialize(resources, instance)
            assert result.success
            with SandboxProcess(root / "aep", landing_zone_dir=root / "storage" / "landing-zone") as sb:
                client = client_for(sb)
                states.append({"inventory": _inventory(client), "metadata": {
                    k: _metadata(instance, k) for k in ("synthetic_events", "propensity_model", "propensity_scores",
                                                        "scoring_features", "aep_score_dataset", "propensity_audiences",
                                                        "audience_activation", "feature_table", "eda_report")},
                    "rows": {name: _active_rows(client, client.catalog.find_dataset(name)["id"])
                             for name in (PROFILE_DATASET, EVENT_DATASET, SCORE_DATASET)},
                    "score_batch": client.catalog.get_batch(
                        _metadata(instance, "aep_score_dataset")["batch_id"])})
        checks = [e for e in instance.all_logs(result.run_id) if e.dagster_event and
                  e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    return root, states, checks


def test_datasets_hold_exactly_the_simulated_rows(pipeline_runs):
    root, states, _ = pipeline_runs
    truth = pl.read_parquet(root / "storage" / "cmle_demo" / "simulation" / "truth.parquet")
    rows = states[0]["rows"]
    assert rows[PROFILE_DATASET] == N_PROFILES
    assert rows[EVENT_DATASET] == int(truth["n_events"].sum()) == states[0]["metadata"]["synthetic_events"][
        "dagster/row_count"]
    converted = states[0]["metadata"]["propensity_scores"]["already_converted"]
    with_events = states[0]["metadata"]["scoring_features"]["dagster/row_count"]
    assert with_events == truth.filter(pl.col("n_events") > 0).height  # who is scored: profiles with events
    assert rows[SCORE_DATASET] == with_events - converted == states[0]["metadata"]["propensity_scores"][
        "dagster/row_count"]


def test_score_batch_succeeded(pipeline_runs):
    _, states, _ = pipeline_runs
    batch = states[0]["score_batch"]
    scored = states[-1]["metadata"]["propensity_scores"]["dagster/row_count"]
    assert batch["status"] == "success" and batch["metrics"]["outputRecordCount"] == scored


def test_segment_sizes_match_the_score_bands(pipeline_runs):
    root, states, _ = pipeline_runs
    storage = LocalStorage(root / "storage")
    pointer = json.loads(storage.read_bytes(SCORES_POINTER))
    scores = storage.read_parquet([pointer["key"]])
    bands = dict(scores.group_by("band").len().iter_rows())
    treated = dict(scores.filter(pl.col("group") == "treatment").group_by("band").len().iter_rows())
    audiences = states[-1]["metadata"]["propensity_audiences"]
    # Each band's audience holds its treated members; its control group is a segment of its own.
    assert {b: audiences[f"{b}_size"] for b in bands} == treated
    assert {b: audiences[f"{b}_size"] + audiences[f"{b}_control_size"] for b in bands} == bands
    assert all(0 < audiences[f"{b}_control_size"] < bands[b] / 2 for b in bands)
    converted = states[-1]["metadata"]["propensity_scores"]["already_converted"]
    with_events = states[-1]["metadata"]["scoring_features"]["dagster/row_count"]
    assert sum(bands.values()) == with_events - converted and converted > 0
    activated = states[-1]["metadata"]["audience_activation"]
    assert {b: activated[f"{b}_members"] for b in bands} == treated
    files = [Path(storage.uri(k)) for k in activated["files"]]
    assert sorted(pl.read_csv(f).height for f in files) == sorted(treated.values())


def test_model_metrics_are_floats_and_the_model_is_saved(pipeline_runs):
    root, states, _ = pipeline_runs
    meta = states[0]["metadata"]["propensity_model"]
    keys = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "oracle_roc_auc", "auc_to_oracle")
    assert all(isinstance(meta[k], float) and meta[k] == meta[k] for k in keys)  # floats, not NaN
    assert 0.5 < meta["roc_auc"] <= 1.0 and 0.0 < meta["log_loss"] and 0.5 < meta["oracle_roc_auc"] <= 1.0
    assert meta["design"] == "temporal" and meta["roc_curve"].startswith("![ROC](data:image/png;base64,")
    model_dir = root / "storage" / "cmle_demo" / "models" / meta["model_version"]
    assert (model_dir / "model.txt").read_text().startswith("tree")
    assert json.loads((model_dir / "model.json").read_text())["feature_names"][0] == "emailsReceived"


def test_feature_table_reports_sql_and_column_lineage(pipeline_runs):
    _, states, _ = pipeline_runs
    meta = states[0]["metadata"]["feature_table"]
    assert "2026-05-04 00:00:00+00:00" in meta["sql"] and "2026-05-18 00:00:00+00:00" in meta["sql"]
    lineage = meta["dagster/column_lineage"].deps_by_column
    assert {d.column_name for d in lineage["minutes_since_emailSent"]} == {"eventType", "timestamp",
                                                                           "_aepsandbox.userid"}
    assert [(d.asset_key.path[-1], d.column_name) for d in lineage["age"]] == [("synthetic_profiles",
                                                                              "person.birthYear")]


def test_second_run_duplicates_nothing(pipeline_runs):
    _, states, _ = pipeline_runs
    first, second = states
    # CTAS tables are versioned by their inputs: each run replaces them (and their ad hoc schemas).
    assert len(first["inventory"]["schemas"]) == len(second["inventory"]["schemas"])
    assert [s for s in first["inventory"]["schemas"] if "(ad hoc" not in s] == [
        s for s in second["inventory"]["schemas"] if "(ad hoc" not in s]
    assert first["inventory"]["segments"] == second["inventory"]["segments"]
    assert first["inventory"]["flows"] == second["inventory"]["flows"]
    assert first["inventory"]["flow_names"] == second["inventory"]["flow_names"]
    assert len(first["inventory"]["datasets"]) == len(second["inventory"]["datasets"])
    assert first["rows"] == second["rows"]
    assert len(first["inventory"]["segments"]) == 6  # three band audiences and their control groups


def test_every_blocking_asset_check_passed(pipeline_runs):
    _, _, checks = pipeline_runs
    evaluations = {c.dagster_event.event_specific_data.check_name: c.dagster_event.event_specific_data
                   for c in checks}
    blocking = ("data_sufficient", "one_row_per_profile", "enough_goals", "auc_floor", "calibrated", "no_leakage",
                "scores_valid", "batch_succeeded")
    assert set(evaluations) >= {*blocking, "champion_challenger"}
    assert all(evaluations[name].passed for name in blocking)


def test_exploration_scores_and_audiences_are_drawn(pipeline_runs):
    _, states, _ = pipeline_runs
    meta = states[-1]["metadata"]
    eda = meta["eda_report"]
    for key, title in (("funnel_plot", "Funnel"), ("goal_correlation_plot", "Event types and the goal"),
                       ("volume_plot", "Event volumes"), ("cooccurrence_plot", "Co-occurrence")):
        assert eda[key].startswith(f"![{title}](data:image/png;base64,"), key
    assert meta["propensity_scores"]["score_distribution"].startswith("![Scores by band](data:image/png;base64,")
    sizes = meta["propensity_audiences"]["sizes_across_runs"]
    assert sizes.startswith("![Audience sizes](data:image/png;base64,")


def _spark_installed() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


@pytest.mark.skipif(not _spark_installed(), reason="needs the [spark] extra and Java 17, which .ci/run installs")
def test_a_run_can_score_on_spark_and_gets_the_published_scores(pipeline_runs):
    """A full rescore at the same cutoff on Spark (run config engine: spark, through Dagster Pipes) equals the
    published scores the subprocess engine made: propensity to 1e-9, and the same percentiles, bands, groups and
    reason codes; the job's summary and its features come back with them."""
    root = pipeline_runs[0]
    storage = LocalStorage(root / "storage")
    published = json.loads(storage.read_bytes(SCORES_POINTER))
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    with dg.instance_for_test() as instance:
        result = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(["cmle_demo", "scoring_features"]),
                                                       dg.AssetKey(["cmle_demo", "propensity_scores"])],
                                resources=resources, instance=instance, run_config=ops({
                                    "scoring_features": {"config": {"cutoff": "2026-06-01", "mode": "full"}},
                                    "propensity_scores": {"config": {"engine": "spark"}}}))
        assert result.success
        scored = _metadata(instance, "propensity_scores")
    assert scored["engine"] == "spark"
    candidate = json.loads(storage.read_bytes(NAMES.scores_candidate))
    assert candidate["key"].endswith("/scores/")  # Spark's folder of parts
    stamps = ["scored_at", "expires_at"]
    spark = storage.read_parquet([candidate["key"]]).sort("profile_id").drop(stamps)
    before = storage.read_parquet([published["key"]]).sort("profile_id").drop(stamps)
    assert spark.height == before.height == scored["dagster/row_count"] > 0  # the summary Spark's job reported
    assert storage.read_parquet([candidate["features_key"]]).height == spark.height  # the drift reference's rows
    assert float((spark["propensity"] - before["propensity"]).abs().max()) <= 1e-9
    assert spark.drop("propensity").equals(before.drop("propensity"))
