"""Benchmark: outcome tracking and the audience uplift recover what the simulation planted.

    python bench/outcomes.py --profiles 100000 --planted-uplift 0.05

Materialises the CMLE demo's whole graph (a fifth of each audience held out as its control group), then
advances the simulated world by the goal's outcome window with ``--planted-uplift`` as the true effect of
being activated in the high band, and materialises ``score_outcomes`` and ``audience_uplift``. The
baseline is the planted effect itself, which only the simulator knows. The last line reads
``planted_uplift=<u> measured_uplift=<m> ci_low=<l> ci_high=<h> expected_rate=<e> realised_rate=<r>``
(the high band's uplift with its 95 % interval, and the run's expected and realised conversion rates).
"""

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import work_dir  # noqa: E402  (bench/measure.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--planted-uplift", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import dagster as dg

    from aep_assets.definitions import defs, materializable_assets, op_config
    from aep_assets.resources import build_resources

    root = work_dir("aep-bench-outcomes-")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    assets = materializable_assets()
    outcome_keys = [dg.AssetKey(["cmle_demo", a]) for a in ("score_outcomes", "audience_uplift")]
    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def meta(instance, asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", asset]))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    with dg.instance_for_test() as instance:
        started = time.time()
        print(f"materialising the demo at {args.profiles} profiles, as of {as_of.date()} ...", flush=True)
        if not dg.materialize(assets, resources=resources, instance=instance, run_config=op_config("cmle_demo", {
                "synthetic_profiles": {"config": {"n_profiles": args.profiles, "seed": args.seed,
                                                  "as_of": as_of.isoformat()}}})).success:
            raise SystemExit("The demo failed; see the log above.")
        pipeline_s = time.time() - started
        print(f"  {pipeline_s:.1f} s; advancing the simulation by the outcome window ...", flush=True)
        advance = defs.resolve_job_def("cmle_demo_simulate_new_events").execute_in_process(
            instance=instance, resources=resources, run_config=op_config("cmle_demo", {"continue_events": {
                "config": {"outcome_window": True, "planted_uplift": args.planted_uplift,
                           "planted_effect": "uniform"}}}))
        if not advance.success:
            raise SystemExit("Advancing the simulation failed; see the log above.")
        landed = [m for m in advance.asset_materializations_for_node("cmle_demo__continue_events")][-1].metadata
        started = time.time()
        if not dg.materialize(assets, selection=outcome_keys, resources=resources, instance=instance).success:
            raise SystemExit("score_outcomes or audience_uplift failed; see the log above.")
        outcomes_s = time.time() - started
        o, u = meta(instance, "score_outcomes"), meta(instance, "audience_uplift")

    print(f"treated members: {landed['treated_members'].value}, campaign conversions: "
          f"{landed['campaign_conversions'].value}")
    print(f"pipeline {pipeline_s:.1f} s, outcome tracking {outcomes_s:.1f} s")
    print(f"run scored at {o['scored_at']}, window ends {o['window_end']}: {o['dagster/row_count']} profiles, "
          f"ROC AUC {o['roc_auc']:.3f}, PR AUC {o['pr_auc']:.3f}, calibration in the large "
          f"{o['calibration_in_the_large']:+.4f}")
    for band in ("high", "medium", "low"):
        print(f"  {band:6s} treated {u[f'{band}_treated']:6d} at {u[f'{band}_treated_rate']:.4f}, control "
              f"{u[f'{band}_control']:5d} at {u[f'{band}_control_rate']:.4f}: uplift {u[f'{band}_uplift']:+.4f} "
              f"[{u[f'{band}_uplift_ci_low']:+.4f}, {u[f'{band}_uplift_ci_high']:+.4f}] p={u[f'{band}_p_value']:.3g}")
    print(f"planted_uplift={args.planted_uplift} measured_uplift={u['high_uplift']:.4f} "
          f"ci_low={u['high_uplift_ci_low']:.4f} ci_high={u['high_uplift_ci_high']:.4f} "
          f"expected_rate={o['expected_rate']:.4f} realised_rate={o['realised_rate']:.4f}")


if __name__ == "__main__":
    main()
