"""Benchmark: the uplift model finds who the campaign changes, on a world whose true uplift is known.

    python bench/uplift.py --profiles 100000 --planted-uplift 0.1

The README's loop in three steps, on the CMLE demo with its heterogeneous planted effect (docs/model.md, 'Uplift'):
1. the whole graph: scores, band audiences with control groups, activation;
2. the world advanced by the outcome window (every activated member responds as its segment does), the outcomes
   job (score_outcomes, audience_uplift, uplift_model, targeting_comparison), then the rescore job, which scores
   the new present, writes the uplift scores back and activates the persuadable audience;
3. the world advanced by one more window, and the outcomes job again.

The baselines are measured in the same run, on the same held-out profiles: the oracle (the profiles ranked by their
true uplift, which only the simulator knows) and the propensity used as an uplift ranking. After step 2 the two
learners the X-learner was chosen over are trained on the same rows and judged on the same profiles: a
two-model learner (mu1 - mu0) and a transformed-outcome regression. The last line reads
``qini_model= qini_oracle= qini_propensity= realised_uplift_persuadable= realised_uplift_propensity=``.
"""

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import work_dir  # noqa: E402  (bench/measure.py)

DEMO = "cmle_demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--planted-uplift", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import dagster as dg

    from aep_assets.definitions import defs, materializable_assets, op_config
    from aep_assets.resources import build_resources

    root = work_dir("aep-bench-uplift-")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    advance = op_config(DEMO, {"continue_events": {"config": {"outcome_window": True,
                                                              "planted_uplift": args.planted_uplift}}})
    timings = {}

    def run_job(name: str, instance, config=None) -> None:
        started = time.time()
        if not defs.resolve_job_def(name).execute_in_process(instance=instance, resources=resources,
                                                             run_config=config or {}).success:
            raise SystemExit(f"{name} failed; see the log above.")
        timings[name] = timings.get(name, 0.0) + time.time() - started

    def meta(instance, asset: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey([DEMO, asset]))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    with dg.instance_for_test() as instance:
        started = time.time()
        print(f"1. the demo's graph at {args.profiles} profiles, as of {as_of.date()} ...", flush=True)
        if not dg.materialize(materializable_assets(), resources=resources, instance=instance,
                              run_config=op_config(DEMO, {"synthetic_profiles": {"config": {
                                  "n_profiles": args.profiles, "seed": args.seed, "as_of": as_of.isoformat()}}})
                              ).success:
            raise SystemExit("The demo failed; see the log above.")
        timings["pipeline"] = time.time() - started
        print("2. one outcome window, the outcomes job, and a rescore with uplift scores ...", flush=True)
        run_job(f"{DEMO}_simulate_new_events", instance, advance)
        run_job(f"{DEMO}_outcomes", instance)
        model = meta(instance, "uplift_model")
        learners = compare_learners(root / "storage") if model.get("sizing_enough") else {}
        run_job(f"{DEMO}_rescore", instance)
        scores, steered = meta(instance, "uplift_scores"), meta(instance, "persuadable_audiences")
        print("3. one more window, and the outcomes job ...", flush=True)
        run_job(f"{DEMO}_simulate_new_events", instance, advance)
        run_job(f"{DEMO}_outcomes", instance)
        compared = meta(instance, "targeting_comparison")

    print(" ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"uplift model: {model['status']}")
    for k in ("sizing_control", "sizing_control_needed", "sizing_detectable_uplift", "rows_train_treated",
              "rows_train_control", "rows_evaluation_treated", "rows_evaluation_control"):
        print(f"  {k} = {model.get(k)}")
    get = lambda m, k: m.get(k, float("nan"))  # noqa: E731
    for who in ("model", "oracle", "propensity"):
        print(f"  {who:10s} qini {get(model, f'{who}_qini'):.5f} [{get(model, f'{who}_qini_ci_low'):.5f}, "
              f"{get(model, f'{who}_qini_ci_high'):.5f}]  uplift top10 {get(model, f'{who}_uplift_top10'):+.4f} "
              f"top20 {get(model, f'{who}_uplift_top20'):+.4f} top30 {get(model, f'{who}_uplift_top30'):+.4f}")
    for name, (qini, low, high) in learners.items():
        print(f"  learner {name:20s} qini {qini:.5f} [{low:.5f}, {high:.5f}]")
    print(f"uplift scores: gated {scores['gated']}, persuadable {scores['persuadable']}; audiences: "
          f"{steered['status']}")
    print(f"targeting comparison: {compared.get('answer', compared.get('status'))}")
    for who in ("persuadable", "propensity"):
        if f"{who}_uplift" in compared:
            print(f"  {who:12s} treated {compared[f'{who}_treated']} control {compared[f'{who}_control']}: uplift "
                  f"{compared[f'{who}_uplift']:+.4f} [{compared[f'{who}_uplift_ci_low']:+.4f}, "
                  f"{compared[f'{who}_uplift_ci_high']:+.4f}], true {get(compared, f'true_uplift_{who}'):+.4f}")
    print(f"qini_model={get(model, 'model_qini'):.5f} qini_oracle={get(model, 'oracle_qini'):.5f} "
          f"qini_propensity={get(model, 'propensity_qini'):.5f} "
          f"realised_uplift_persuadable={get(compared, 'persuadable_uplift'):.4f} "
          f"realised_uplift_propensity={get(compared, 'propensity_uplift'):.4f}")


def compare_learners(storage_dir: Path) -> dict[str, tuple[float, float, float]]:
    """The X-learner against a two-model and a transformed-outcome learner, same rows, same evaluation profiles."""
    import numpy as np
    import polars as pl
    import yaml

    from aep_assets.ml.uplift import EFFECT_PARAMS, OUTCOME_PARAMS, XLearner, evaluate_ranking, fit_booster
    from aep_assets.pipeline.spec import ModelSpec
    from aep_assets.pipeline.stage_context import StageContext
    from aep_assets.pipeline.uplift import EVALUATION_SALT, TREATED, evaluation_rows, uplift_rows
    from aep_assets.storage import LocalStorage

    doc = yaml.safe_load((Path(__file__).parents[1] / "aep_assets/defs/cmle_demo/defs.yaml").read_text())
    spec = ModelSpec.model_validate(doc["attributes"])
    rows, features, _ = uplift_rows(StageContext(spec, LocalStorage(storage_dir)))
    held = evaluation_rows(rows["profile_id"], spec.uplift.evaluation_share, f"{DEMO}/{EVALUATION_SALT}")
    x = rows.select([pl.col(c).cast(pl.Float64) for c in features]).to_numpy()
    t, y = rows[TREATED].to_numpy(), rows["y"].to_numpy().astype(float)
    xf, tf, yf = x[~held], t[~held], y[~held]
    names = list(features)

    def two_model(xs: np.ndarray) -> np.ndarray:
        mu0, mu1 = (fit_booster(OUTCOME_PARAMS, xf[g], yf[g], 7 + i, names) for i, g in enumerate((~tf, tf)))
        return mu1.predict(xs) - mu0.predict(xs)

    def transformed_outcome(xs: np.ndarray) -> np.ndarray:
        e = tf.mean()
        z = yf * (tf / e - (~tf) / (1 - e))
        return fit_booster(EFFECT_PARAMS, xf, z, 9, names).predict(xs)

    def x_learner(xs: np.ndarray) -> np.ndarray:
        return XLearner.fit(xf, tf, yf, features).predict(xs)

    out = {}
    for name, learner in (("x_learner", x_learner), ("two_model", two_model),
                          ("transformed_outcome", transformed_outcome)):
        judged = evaluate_ranking(learner(x[held]), t[held], y[held])
        out[name] = (judged.qini, judged.qini_ci_low, judged.qini_ci_high)
    return out


if __name__ == "__main__":
    main()
