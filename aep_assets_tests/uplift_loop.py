"""The README's uplift loop on the demo, as the end-to-end tests run it: the whole graph; the world advanced by
one outcome window, the outcomes job and the rescore job; then (``windows=2``) one more window and the outcomes
job. On a real Dagster instance, the sandbox over HTTP and real Parquet files."""

import dagster as dg

from aep_assets.resources import build_resources
from aep_assets.storage import LocalStorage
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .demo import ALL_ASSETS, DEMO, NAMES, defs, ops

AS_OF = "2026-06-01"


def _metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey([DEMO, asset]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _check(instance, asset: str, name: str):
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey([DEMO, asset]), name)])
    return next(iter(record.values())).event.dagster_event.event_specific_data


def uplift_loop(root, *, profiles: int, planted: float, windows: int) -> dict:
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    advance = ops({"continue_events": {"config": {"outcome_window": True, "planted_uplift": planted}}})

    def job(instance, name: str, config=None) -> None:
        result = defs.resolve_job_def(f"{DEMO}_{name}").execute_in_process(
            instance=instance, resources=resources, run_config=config or {})
        assert result.success, name

    with dg.instance_for_test() as instance:
        assert dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=ops(
            {"synthetic_profiles": {"config": {"n_profiles": profiles, "seed": 42, "as_of": AS_OF}},
             "feature_table": {"config": {"train_cutoff": "2026-05-04", "test_cutoff": "2026-05-18",
                                          "horizon_days": 14}}})).success
        first = {"model": _metadata(instance, "uplift_model"), "scores": _metadata(instance, "uplift_scores"),
                 "audiences": _metadata(instance, "persuadable_audiences"),
                 "gate": _check(instance, "uplift_model", "beats_random")}
        job(instance, "simulate_new_events", advance)
        job(instance, "outcomes")
        job(instance, "rescore")
        world = {"first": first, "model": _metadata(instance, "uplift_model"),
                 "gate": _check(instance, "uplift_model", "beats_random"),
                 "scores": _metadata(instance, "uplift_scores"),
                 "audiences": _metadata(instance, "persuadable_audiences"), "resources": resources,
                 "storage": LocalStorage(root / "storage")}
        if windows > 1:
            job(instance, "simulate_new_events", advance)
            job(instance, "outcomes")
            world["comparison"] = _metadata(instance, "targeting_comparison")
    with SandboxProcess(root / "aep", landing_zone_dir=root / "storage" / "landing-zone") as sb:
        client = client_for(sb)
        dataset = client.catalog.find_dataset(NAMES.uplift_dataset)
        world["aep"] = {
            "uplift_dataset": dataset,
            "uplift_rows": dataset and sum(int(b["metrics"].get("outputRecordCount", 0))
                                           for b in client.catalog.iter_batches(dataset["id"], status="success")),
            "segments": {name: client.segmentation.find_segment(name)
                         for name in (NAMES.persuadable_audience(), NAMES.persuadable_control())}}
    return world
