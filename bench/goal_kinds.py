"""Benchmark: the three goal kinds on two orgs' real-shaped data, against the field's standard statistical models.

    python bench/goal_kinds.py --scale 1

Builds the two data sets of the tests (aep_assets_tests/real_orgs.py) through the sandbox's public APIs: a
closed cohort's purchase log over 18 months (5,000 customers at scale 1) and a growing Web SDK site over six
months with a seasonal peak (16,000 visitors). Materialises the six example models (examples/models/store_*.yaml,
site_*.yaml) with their default gates and no run config, and prints each one's holdout metrics and time.

Baselines, measured in the same run on the same holdout rows (the profiles of the test cutoff that did not
calibrate):

- on the purchase log, BG/NBD (Fader, Hardie and Lee 2005) fitted by maximum likelihood on each customer's
  history before the test cutoff, whose expected purchases in the window rank conversion (and, reversed,
  churn), and BG/NBD times Gamma-Gamma (Fader, Hardie and Lee 2005b) for the expected spend: the field's
  standard statistical models for non-contractual customers;
- the planted truth (the probability of a purchase in the window, the expected spend), the ceiling.

The last line reads ``value_vs_bgnbd=<our normalised Gini / BG/NBD-GG's> conversion_auc_vs_bgnbd=<ratio>``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import work_dir  # noqa: E402  (bench/measure.py)


def customer_history(events: pl.DataFrame, cutoff) -> pl.DataFrame:
    """x (repeat purchases), t_x (days from the first to the last purchase), T (days from the first to the
    cutoff) and the mean spend, per customer, from purchases strictly before ``cutoff``."""
    before = events.filter(pl.col("timestamp") < cutoff)
    days = (pl.col("timestamp") - pl.col("timestamp").min()).dt.total_seconds() / 86400
    return before.group_by("profile_id").agg(
        (pl.len() - 1).alias("x"), days.max().alias("t_x"),
        ((pl.lit(cutoff) - pl.col("timestamp").min()).dt.total_seconds() / 86400).alias("T"),
        pl.col("price").mean().alias("m"), pl.len().alias("n"))


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[float, float, float, float]:
    def nll(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        first = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + T)
        second = np.where(x > 0, betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) + common
                          - (r + x) * np.log(alpha + t_x), -np.inf)
        return -float(np.logaddexp(first, second).sum())

    best = minimize(nll, np.log([1.0, 30.0, 1.0, 3.0]), method="Nelder-Mead", options={"maxiter": 4000})
    return tuple(np.exp(best.x))


def bgnbd_expected(params, x, t_x, T, t: float) -> np.ndarray:
    """Expected purchases in (T, T + t] given (x, t_x, T)."""
    r, alpha, a, b = params
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    head = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    alive_odds = np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head / (1 + alive_odds)


def fit_gamma_gamma(n: np.ndarray, m: np.ndarray) -> tuple[float, float, float]:
    def nll(log_params: np.ndarray) -> float:
        p, q, g = np.exp(log_params)
        return -float((gammaln(p * n + q) - gammaln(p * n) - gammaln(q) + q * np.log(g) + (p * n - 1) * np.log(m)
                       + p * n * np.log(n) - (p * n + q) * np.log(g + m * n)).sum())

    best = minimize(nll, np.log([2.0, 3.0, 50.0]), method="Nelder-Mead", options={"maxiter": 4000})
    return tuple(np.exp(best.x))


def gamma_gamma_spend(params, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    p, q, g = params
    return (q - 1) / (p * n + q - 1) * g * p / (q - 1) + p * n / (p * n + q - 1) * m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="data size, 1 = the tests' (5,000 and 16,000)")
    parser.add_argument("--min-goal-profiles", type=int, default=None,
                        help="lower each model's sufficiency floors (500 goal and 500 non-goal profiles per split) "
                             "to fit a smaller scale; the test suite's quick run does, the figures keep the YAML's")
    args = parser.parse_args()

    import dagster as dg
    from sklearn.metrics import roc_auc_score

    from aep_assets.components.propensity_model import PropensityModel
    from aep_assets.ml.value import normalized_gini, value_metrics
    from aep_assets.resources import build_resources
    from aep_assets_tests.conftest import client_for
    from aep_assets_tests.real_orgs import closed_cohort, cohort_truth, growing_site, site_truth
    from aep_sandbox.process import SandboxProcess

    root = work_dir("aep-bench-kinds-")
    with SandboxProcess(root / "aep") as sb:
        client = client_for(sb)
        store = closed_cohort(client, n=int(5000 * args.scale))
        site = growing_site(client, n=int(16000 * args.scale))
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    rows, holdouts = [], {}
    with dg.instance_for_test() as instance:
        for name in ("store_repeat_purchase", "store_churn", "store_value", "site_first_purchase", "site_churn",
                     "site_value"):
            spec = PropensityModel.from_file(ROOT / "examples" / "models" / f"{name}.yaml").spec
            if args.min_goal_profiles:
                floors = {"min_goal_profiles": args.min_goal_profiles, "min_non_goal_profiles": args.min_goal_profiles}
                spec = spec.model_copy(update={"sufficiency": spec.sufficiency.model_copy(update=floors)})
            defs = PropensityModel(spec).build_defs(None)
            started = time.perf_counter()
            result = dg.materialize(list(defs.assets), resources=resources, instance=instance, raise_on_error=False,
                                    selection=[k for a in defs.assets if isinstance(a, dg.AssetsDefinition)
                                               for k in a.keys])
            seconds = time.perf_counter() - started
            event = instance.get_latest_materialization_event(dg.AssetKey([name, "propensity_model"]))
            if event is None:
                why = [c.description for c in result.get_asset_check_evaluations() if not c.passed]
                raise SystemExit(f"{name} trained no model: {'; '.join(filter(None, why)) or 'see the log above'}")
            meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
            holdouts[name] = pl.read_parquet(str(Path(meta["model_card_uri"]).with_name("holdout.parquet")))
            failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
            rows.append({"model": name, "kind": spec.goal.kind, "success": result.success, "seconds": round(seconds, 1),
                         "roc_auc": round(meta["roc_auc"], 4), "ece": round(meta["ece"], 4),
                         "failed_checks": ",".join(failed) or "-"})

    print(pl.DataFrame(rows))
    store_spec = PropensityModel.from_file(ROOT / "examples/models/store_value.yaml").spec
    test_cutoff, horizon = store_spec.cutoff_times(store.today)[1], store_spec.goal.outcome_days
    old = store.tables["old"]
    events = pl.DataFrame({"profile_id": [m[0][1][0]["id"] for m in old["identityMap"].to_pylist()]}).with_columns(
        pl.from_arrow(old["timestamp"]).alias("timestamp"),
        pl.from_arrow(old["commerce"]).struct.field("order").struct.field("priceTotal").alias("price"))
    history = customer_history(events, test_cutoff)
    h = {c: history[c].to_numpy().astype(float) for c in ("x", "t_x", "T", "m", "n")}
    bgnbd = fit_bgnbd(h["x"], h["t_x"], h["T"])
    gg = fit_gamma_gamma(h["n"], h["m"])
    baseline = history.select("profile_id").with_columns(
        pl.Series("bg_purchases", bgnbd_expected(bgnbd, h["x"], h["t_x"], h["T"], horizon)),
        pl.Series("bg_value", bgnbd_expected(bgnbd, h["x"], h["t_x"], h["T"], horizon)
                  * gamma_gamma_spend(gg, h["n"], h["m"])))
    truth = cohort_truth(store, test_cutoff, horizon)
    print(f"BG/NBD r, alpha, a, b = {', '.join(f'{v:.3g}' for v in bgnbd)}; Gamma-Gamma p, q, gamma = "
          f"{', '.join(f'{v:.3g}' for v in gg)}")
    figures = {}
    for name, label in (("store_repeat_purchase", "goal_occurred"), ("store_churn", "goal_occurred")):
        held = holdouts[name].join(baseline, on="profile_id").join(truth, on="profile_id")
        y, sign = held[label].to_numpy(), (-1 if name == "store_churn" else 1)
        ours = roc_auc_score(y, held["propensity"])
        bg = roc_auc_score(y, sign * held["bg_purchases"].to_numpy())
        ceiling = roc_auc_score(y, sign * held["p_purchase"].to_numpy())
        figures[name] = ours / bg
        print(f"{name}: roc_auc {ours:.4f}  BG/NBD {bg:.4f}  planted truth {ceiling:.4f}  (rows {held.height})")
    held = holdouts["store_value"].join(baseline, on="profile_id").join(truth, on="profile_id")
    realised = held["goal_value"].to_numpy()
    ours = value_metrics(realised, held["predicted_value"].to_numpy(), float(realised.mean()))
    bg = value_metrics(realised, held["bg_value"].to_numpy(), float(realised.mean()))
    print(f"store_value: normalized_gini {ours['normalized_gini']:.4f} (BG/NBD-GG {bg['normalized_gini']:.4f}, "
          f"truth {normalized_gini(realised, held['expected_spend'].to_numpy()):.4f}); spearman "
          f"{ours['spearman']:.4f} ({bg['spearman']:.4f}); total_ratio {ours['total_ratio']:.3f} "
          f"({bg['total_ratio']:.3f}); rmse_skill {ours['rmse_skill']:.3f} ({bg['rmse_skill']:.3f})")
    site_spec = PropensityModel.from_file(ROOT / "examples/models/site_value.yaml").spec
    site_cutoff = site_spec.cutoff_times(site.today)[1]
    for name, column, truth_column in (("site_first_purchase", "propensity", "p_purchase"),
                                       ("site_value", "predicted_value", "expected_spend")):
        held = holdouts[name].join(site_truth(site, site_cutoff, site_spec.goal.outcome_days), on="profile_id")
        print(f"{name}: mean forecast {held[column].mean():.4f} against the planted {held[truth_column].mean():.4f}")
    print(f"value_vs_bgnbd={ours['normalized_gini'] / bg['normalized_gini']:.3f} "
          f"conversion_auc_vs_bgnbd={figures['store_repeat_purchase']:.3f}")


if __name__ == "__main__":
    main()
