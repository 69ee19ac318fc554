"""Looking back once an outcome window closes: did the scores come true (score_outcomes), and what did each
audience cause against its control group (audience_uplift)."""

import dagster as dg
import polars as pl

from ..ml.holdout import detectable_uplift
from ..ml.plots import markdown_image, outcome_history_plot, outcome_plot, uplift_plot
from ..pipeline.outcomes import evaluate_outcomes, measure_audience_uplift
from ..resources import AEPResource, StorageResource
from .instance import OUTCOMES, Instance
from .metadata import md_table


def _rates(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(frame.columns[0]), "profiles", "conversions",
                        *[pl.col(c).round(4) for c in ("expected_rate", "expected_low", "expected_high",
                                                        "realised_rate", "realised_low", "realised_high")], "inside")


def build(m: Instance) -> list:
    outcomes_key = m.key("score_outcomes")
    scored = m.key("aep_score_dataset") if m.writes_back else m.key("propensity_scores")

    @dg.asset(key=outcomes_key, group_name=m.group(OUTCOMES), deps=[scored, m.event_source],
              kinds={"adobe", "sql", "polars"},
              check_specs=[dg.AssetCheckSpec(
                  "realised_within_expected", asset=outcomes_key, blocking=False,
                  description="Warns when a decile's or band's realised conversion rate leaves the interval its "
                              "scores expect (Bonferroni-corrected over every decile and band).")])
    def score_outcomes(context: dg.AssetExecutionContext, aep: AEPResource,
                       storage: StorageResource) -> dg.MaterializeResult:
        """Each scoring run, once its outcome window (cutoff, cutoff + goal.outcome_days] has closed: the goal
        events in the window (Query Service, sql/score_outcomes.sql) against the scores: expected and
        realised conversion per decile and band with intervals, calibration in the large, ROC AUC and PR
        AUC. Once audiences were activated with control groups, the forecast is judged on the controls,
        whose outcomes no campaign moved. Runs whose window is still open wait; the outcome sensor
        materialises this when one closes."""
        report = evaluate_outcomes(m.stage(storage, aep=aep))
        due = report.due
        meta = {"present": due.present.isoformat(), "evaluated_runs": len(report.evaluated),
                "runs_waiting": len(due.waiting), "runs_evaluated_so_far": len(report.history)}
        if due.next_close is not None:
            meta["next_window_closes"] = due.next_close.isoformat()
        if not report.evaluated:
            context.log.info("no scoring run's outcome window has closed yet (present %s)", due.present.isoformat())
            return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
                check_name="realised_within_expected", passed=True,
                metadata={"status": "nothing to check: no outcome window has closed yet"})])
        outcome, comparison = report.evaluated[-1]
        history = pl.DataFrame([{k: getattr(o, k) for k in ("scored_at", "cutoff", "profiles", "expected_rate",
                                                              "realised_rate", "calibration_in_the_large",
                                                              "roc_auc", "pr_auc")} for o in report.history])
        meta.update({
            "scored_at": outcome.scored_at, "cutoff": outcome.cutoff, "window_end": outcome.window_end,
            "model_version": outcome.model_version, "dagster/row_count": outcome.profiles,
            "judged_on": outcome.judged_on,
            "conversions": outcome.conversions, "expected_rate": outcome.expected_rate,
            "realised_rate": outcome.realised_rate, "calibration_in_the_large": outcome.calibration_in_the_large,
            "roc_auc": outcome.roc_auc, "pr_auc": outcome.pr_auc,
            "dagster/uri": storage.get().uri(outcome.outcomes_key),
            "by_decile": md_table(_rates(comparison.by_decile), rows=10),
            "by_band": md_table(_rates(comparison.by_band), rows=3),
            "expected_vs_realised": dg.MetadataValue.md(markdown_image("Expected vs realised",
                                                                       outcome_plot(comparison.by_decile))),
            "runs": md_table(history.with_columns(pl.col(pl.Float64).round(4)), rows=20),
            **({f"value_{k}": float(v) for k, v in outcome.value.items() if k != "by_band"} if outcome.value else {}),
            **({"value_by_band": md_table(pl.DataFrame(outcome.value["by_band"]).with_columns(
                pl.col(pl.Float64).round(2)))} if outcome.value else {}),
            "across_runs": dg.MetadataValue.md(markdown_image("Across runs", outcome_history_plot(history))),
        })
        warned = [(o.scored_at, o.outside) for o, _ in report.evaluated if o.outside]
        for scored_at, outside in warned:
            context.log.warning("run %s: realised conversion left its expected interval in %s", scored_at,
                                ", ".join(outside))
        return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
            check_name="realised_within_expected", passed=not warned, severity=dg.AssetCheckSeverity.WARN,
            metadata={"runs_checked": len(report.evaluated), "z": comparison.z,
                      "outside": dg.MetadataValue.json({s: o for s, o in warned}),
                      "calibration_in_the_large": outcome.calibration_in_the_large})])

    assets = [score_outcomes]
    if m.writes_back:
        assets.append(_uplift_asset(m))
    return assets


def _uplift_asset(m: Instance):
    spec = m.spec

    @dg.asset(key=m.key("audience_uplift"), group_name=m.group(OUTCOMES),
              deps=[m.key("score_outcomes"), m.key("audience_activation")], kinds={"polars"})
    def audience_uplift(storage: StorageResource) -> dg.MaterializeResult:
        """Per audience, once its window closed: the activated members' conversion rate against the control
        group's (held out by holdout.share), the absolute and relative uplift with 95 % intervals, and the
        p-value of 'no effect'; with the uplift the control group could detect."""
        found = measure_audience_uplift(m.stage(storage))
        meta = {"runs_measured": len(found), "holdout_share": spec.holdout.share}
        if not found:
            reason = ("holdout.share is 0: every member is activated, so no control group measures the uplift"
                      if spec.holdout.share <= 0 else "no activated run's outcome window has closed yet")
            return dg.MaterializeResult(metadata={**meta, "status": reason})
        latest = found[-1]
        rows = []
        for band, u in latest.bands.items():
            rate = u.control_rate
            rows.append({"band": band, "treated": u.treated, "control": u.control,
                         "treated_rate": u.treated_rate, "control_rate": rate, "uplift": u.absolute,
                         "ci_low": u.ci_low, "ci_high": u.ci_high, "relative": u.relative, "p_value": u.p_value,
                         "detectable_uplift": detectable_uplift(
                             u.treated + u.control, rate, u.control / (u.treated + u.control),
                             power=spec.holdout.power, alpha=spec.holdout.alpha)})
            meta.update({f"{band}_uplift": u.absolute, f"{band}_uplift_ci_low": u.ci_low,
                         f"{band}_uplift_ci_high": u.ci_high, f"{band}_relative_uplift": u.relative,
                         f"{band}_p_value": u.p_value, f"{band}_treated_rate": u.treated_rate,
                         f"{band}_control_rate": rate, f"{band}_treated": u.treated, f"{band}_control": u.control})
        table = pl.DataFrame(rows)
        meta.update({
            "scored_at": latest.scored_at, "window_end": latest.window_end,
            "uplift": md_table(table.with_columns(pl.col(pl.Float64).round(4)), rows=3),
            "uplift_plot": dg.MetadataValue.md(markdown_image("Uplift", uplift_plot(
                table["band"].to_list(), *(table[c].to_numpy().astype(float) for c in ("uplift", "ci_low",
                                                                                         "ci_high"))))),
            "results": dg.MetadataValue.json({b: u.to_json() for b, u in latest.bands.items()}),
        })
        return dg.MaterializeResult(metadata=meta)

    return audience_uplift
