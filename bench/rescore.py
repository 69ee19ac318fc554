"""Benchmark: incremental rescoring after new events, against a full rescore of the same data.

    python bench/rescore.py --profiles 100000 --changed 0.01

Materialises the whole graph (simulation as of two days ago), lands one day of new events for about
``--changed`` of the profiles as a new batch, then runs the rescore job twice at the same cutoff:
incrementally (the profiles with events in the new batch), then in full (every profile), which is the
baseline. Each figure is the sum of the rescore stages' step times from Dagster's event log; the
wall time of each run, which adds the run's own start-up (the embedded sandbox process), is printed
too. The rescored profiles' propensities must equal the full rescore's. The last line reads
``speedup=<full stage time / incremental stage time>``.
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import work_dir  # noqa: E402  (bench/measure.py)


def step_times(instance, run_id: str) -> dict[str, float]:
    starts, out = {}, {}
    for e in instance.all_logs(run_id):
        if not (e.dagster_event and e.step_key):
            continue
        if e.dagster_event.event_type_value == "STEP_START":
            starts[e.step_key] = e.timestamp
        elif e.dagster_event.event_type_value == "STEP_SUCCESS":
            out[e.step_key.split("__", 1)[-1]] = e.timestamp - starts[e.step_key]
    return out


def require_success(result, what: str) -> None:
    """Stop with why a run failed: each failed check's figures and fix, or the step's error."""
    if result.success:
        return
    why = [f"{c.asset_key.to_user_string()} {c.check_name}: {c.description}"
           for c in result.get_asset_check_evaluations() if not c.passed]
    why += [e.event_specific_data.error.message.strip() for e in result.all_events
            if e.event_type_value == "STEP_FAILURE" and not why]
    raise SystemExit(f"{what} failed:\n" + "\n".join(why))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="target share of profiles with new events")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import dagster as dg
    import polars as pl

    from aep_assets.definitions import defs, materializable_assets, op_config
    from aep_assets.jobs import RESCORE_ASSETS
    from aep_assets.pipeline.naming import Names
    from aep_assets.pipeline.synthetic import load_simulation
    from aep_assets.resources import build_resources
    from aep_assets.storage import LocalStorage

    root = work_dir("aep-bench-rescore-")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    storage = LocalStorage(root / "storage")
    demo = Names("cmle_demo")
    all_assets = materializable_assets()
    simulate_new_events = defs.resolve_job_def("cmle_demo_simulate_new_events")
    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    cutoff = (as_of + timedelta(days=1)).isoformat()

    from aep_assets.components.propensity_model import PropensityModel

    spec = PropensityModel.from_file(Path(__file__).resolve().parents[1] / "aep_assets/defs/cmle_demo/defs.yaml").spec
    train_cutoff, test_cutoff = spec.cutoff_times(as_of)  # the demo's relative cutoffs, counted from as_of

    def rescore(instance, mode: str):
        started = time.time()
        result = dg.materialize(all_assets, selection=[dg.AssetKey(["cmle_demo", a]) for a in RESCORE_ASSETS],
                                resources=resources, instance=instance, run_config=op_config("cmle_demo", {
                                    "scoring_features": {"config": {"cutoff": cutoff, "mode": mode}}}))
        require_success(result, f"the {mode} rescore")
        return time.time() - started, step_times(instance, result.run_id)

    with dg.instance_for_test() as instance:
        print(f"materialising the graph at {args.profiles} profiles, as of {as_of.date()} ...", flush=True)
        require_success(dg.materialize(all_assets, resources=resources, instance=instance, raise_on_error=False,
                                       run_config=op_config("cmle_demo", {
            "synthetic_profiles": {"config": {"n_profiles": args.profiles, "seed": args.seed,
                                              "as_of": as_of.isoformat()}},
            "feature_table": {"config": {"train_cutoff": train_cutoff.isoformat(),
                                         "test_cutoff": test_cutoff.isoformat()}},
            "scoring_features": {"config": {"cutoff": as_of.isoformat()}}})), "the first materialisation")
        sim = load_simulation(storage, demo.simulation)
        last_day = sim.events.filter(pl.col("timestamp") >= as_of - timedelta(days=1))
        daily_active = last_day["profile_index"].n_unique() / args.profiles
        share = min(1.0, args.changed / daily_active)
        assert simulate_new_events.execute_in_process(instance=instance, resources=resources, run_config=op_config(
            "cmle_demo", {"continue_events": {"config": {"days": 1, "profile_share": share, "seed": args.seed}}})
        ).success
        changed = load_simulation(storage, demo.simulation).events.filter(
            pl.col("timestamp") > as_of)["profile_index"].n_unique()
        incremental_wall, incremental = rescore(instance, "auto")
        published = storage.read_parquet([json.loads(storage.read_bytes(demo.scores_pointer))["changes_key"]])
        full_wall, full = rescore(instance, "full")
        full_scores = storage.read_parquet([json.loads(storage.read_bytes(demo.scores_pointer))["key"]])

    rescored = published.filter(pl.col("band") != "converted").join(
        full_scores.select("profile_id", pl.col("propensity").alias("full")), on="profile_id")
    max_diff = float((rescored["propensity"] - rescored["full"]).abs().max() or 0.0)
    print(f"profiles={args.profiles} changed_profiles={changed} ({100 * changed / args.profiles:.2f} %) "
          f"written_back={published.height}")
    print(f"{'stage':<22}{'incremental_s':>15}{'full_s':>10}")
    for step in RESCORE_ASSETS:
        print(f"{step:<22}{incremental.get(step, 0):>15.2f}{full.get(step, 0):>10.2f}")
    inc_total, full_total = sum(incremental.values()), sum(full.values())
    print(f"{'stages total':<22}{inc_total:>15.2f}{full_total:>10.2f}")
    print(f"{'run wall time':<22}{incremental_wall:>15.2f}{full_wall:>10.2f}")
    print(f"max |propensity difference| of rescored profiles, incremental vs full: {max_diff:.2e}")
    print(f"speedup={full_total / inc_total:.1f}")


if __name__ == "__main__":
    main()
