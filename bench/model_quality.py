"""Benchmark: the propensity model's quality on the temporal holdout, against the oracle.

    python bench/model_quality.py --profiles 100000

Materialises the graph up to propensity_model on a fresh local sandbox (the honest, temporal design),
then again with feature_table's adobe_compatible flag (Adobe's notebook rows), and prints each one's
metrics. Baselines from the same run: the oracle probability on the same holdout rows (the ceiling),
and the same training with Adobe's 14 features only. The last line reads
``auc_to_oracle=<ratio> ece=<value>`` for the temporal design; the targets are >= 0.98 and <= 0.02.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import work_dir  # noqa: E402  (bench/measure.py)

KEYS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_precision", "top_decile_lift",
        "oracle_roc_auc", "auc_to_oracle", "random_split_roc_auc")


def materialize(instance, resources, run_config: dict) -> tuple[dict, dict]:
    import dagster as dg

    from aep_assets.definitions import defs

    job = defs.get_implicit_global_asset_job_def()
    selection = dg.AssetSelection.assets(dg.AssetKey(["cmle_demo", "propensity_model"])).upstream()
    keys = selection.resolve(defs.resolve_asset_graph())
    result = job.get_subset(asset_selection=keys).execute_in_process(
        instance=instance, resources=resources, run_config=run_config, raise_on_error=False)
    event = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", "propensity_model"]))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
              for e in instance.all_logs(result.run_id)
              if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"}
    return meta, checks


def adobe_features_only(storage_dir: Path) -> dict:
    """The same temporal design trained on Adobe's 14 features alone (a baseline from the same data)."""
    from aep_assets.ml.adobe_features import ADOBE_FEATURES
    from aep_assets.ml.feature_set import ID, LABEL
    from aep_assets.ml.train import train_model
    from aep_assets.pipeline.naming import Names
    from aep_assets.storage import LocalStorage

    store = LocalStorage(storage_dir)
    frame = store.read_parquet(json.loads(store.read_bytes(Names("cmle_demo").training_export))["keys"])
    model = train_model(frame.select(ID, "cutoff", "split", *ADOBE_FEATURES, LABEL), ADOBE_FEATURES)
    return model.metrics


def show(title: str, meta: dict, checks: dict) -> None:
    print(f"\n[{title}] design={meta['design']} model_version={meta['model_version']}")
    for k in KEYS:
        print(f"  {k:<24}{meta[k]:.4f}")
    print("  checks: " + ", ".join(f"{name}={'pass' if ok else 'FAIL'}" for name, ok in sorted(checks.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()

    import dagster as dg

    from aep_assets.definitions import op_config
    from aep_assets.resources import build_resources

    root = work_dir("aep-model-bench-")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    base = {"synthetic_profiles": {"config": {"n_profiles": args.profiles, "seed": args.seed}},
            "propensity_model": {"config": {"trials": args.trials}}}
    with dg.instance_for_test() as instance:
        started = time.time()
        honest, honest_checks = materialize(instance, resources, op_config("cmle_demo", base))
        honest_s = time.time() - started
        only14 = adobe_features_only(root / "storage")  # before the next run replaces the training export
        started = time.time()
        adobe, adobe_checks = materialize(instance, resources, op_config("cmle_demo", {
            **base, "feature_table": {"config": {"adobe_compatible": True}}}))
        adobe_s = time.time() - started

    print(f"profiles={args.profiles} trials={args.trials} (graph up to propensity_model: {honest_s:.0f}s temporal, "
          f"{adobe_s:.0f}s adobe-compatible)")
    show("temporal design (default)", honest, honest_checks)
    show("adobe-compatible training rows", adobe, adobe_checks)
    print("\n[baselines, same run]")
    print(f"  oracle_roc_auc (ceiling, same holdout rows)     {honest['oracle_roc_auc']:.4f}")
    print(f"  adobe 14 features, temporal design: roc_auc     {only14['roc_auc']:.4f}  ece {only14['ece']:.4f}")
    print(f"  adobe-compatible rows: roc_auc on its own rows  {adobe['random_split_roc_auc']:.4f}")
    print(f"  adobe-compatible rows: roc_auc on the holdout   {adobe['roc_auc']:.4f}  ece {adobe['ece']:.4f}")
    print(f"auc_to_oracle={honest['auc_to_oracle']:.4f} ece={honest['ece']:.4f}")


if __name__ == "__main__":
    main()
