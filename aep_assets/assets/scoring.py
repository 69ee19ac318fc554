"""Features as of now for every profile, and their scores."""

import dagster as dg
import polars as pl
from pydantic import Field

from ..ml.drift import SCORE, DriftAssessment, DriftPolicy
from ..ml.plots import markdown_image, score_distribution_plot
from ..ml.scoring import BandPolicy
from ..pipeline.scoring_stages import build_scoring_features, score_profiles
from ..pipeline.spec import ModelSpec, parse_time
from ..resources import AEPResource, MLflowResource, StorageResource
from .checks import check_result
from .instance import SCORING, Instance
from .metadata import md_table, sql_md
from .scoring_engines import job_runner, scoring_settings


class ScoringFeaturesConfig(dg.Config):
    cutoff: str = Field(default="", description="Score as of this ISO date or datetime (UTC); default: the "
                                                "model's scoring.as_of, or now.")
    mode: str = Field(default="auto", description="'auto' rescores only the profiles with events in new batches "
                      "(everyone when the model changed, profiles changed or scores expired); 'full' rescores "
                      "everyone.")


class ScoreConfig(dg.Config):
    high_band: str = Field(default="top_decile", description="How the high band is chosen from held-out gains: "
                           "'top_decile', 'reach' (the top `reach` share) or 'precision' (the largest reach whose "
                           "held-out precision is at least `target_precision`).")
    reach: float = Field(default=0.10, description="Share of profiles in the high band for the 'reach' policy.")
    target_precision: float = Field(default=0.0, description="Held-out conversion rate the high band must reach "
                                                             "for the 'precision' policy.")
    medium_reach: float = Field(default=0.30, description="Share of profiles in the medium band, below the high.")
    valid_days: int = Field(default=0, description="Scores expire this many days after scoring; a rescore then "
                                                  "covers every profile. 0: the model's scoring.valid_days.")
    reason_method: str = Field(default="shap", description="'shap' (exact TreeSHAP) or 'path' (path attribution, "
                               "an approximation that differs from SHAP on deep trees; see ml/explain.py).")
    engine: str = Field(default="", description="Where this run scores: 'subprocess', 'spark' (with the YAML's "
                        "scoring.spark) or 'local'; empty: the YAML's scoring.engine.")
    drift_warn: float | None = Field(default=None, description="This run only: instead of the YAML's "
                                     "gates.drift.warn.")
    drift_block: float | None = Field(default=None, description="This run only: instead of gates.drift.block.")

    def drift_policy(self, spec: ModelSpec) -> DriftPolicy:
        g = spec.gates.drift
        return DriftPolicy(g.warn if self.drift_warn is None else self.drift_warn,
                           g.block if self.drift_block is None else self.drift_block, g.min_population_ratio)


def build(m: Instance) -> list:
    names, spec = m.names, m.spec

    @dg.asset(key=m.key("scoring_features"), group_name=m.group(SCORING),
              deps=[*m.sources, m.key("propensity_model")], kinds={"adobe", "sql", "parquet"})
    def scoring_features(context: dg.AssetExecutionContext, config: ScoringFeaturesConfig, aep: AEPResource,
                         storage: StorageResource, mlflow: MLflowResource) -> dg.MaterializeResult:
        """The model's feature SQL run with T = now (no label), by Query Service CTAS from
        sql/scoring_features.sql, then exported to storage: for every profile with events, or only for those
        with events in batches the published scores do not reflect yet (see pipeline/rescoring.py)."""
        store = storage.get()
        as_of = config.cutoff or spec.scoring.as_of
        f = build_scoring_features(aep.client(), store, mlflow.registry(), spec, names,
                                   parse_time("cutoff", as_of) if as_of else None, mode=config.mode)
        plan = f.plan
        context.log.info("%s rescore: %s", plan.mode, plan.reason)
        meta = {"mode": plan.mode, "reason": plan.reason, "cutoff": f.cutoff.isoformat(),
                "new_batches": dg.MetadataValue.json(plan.new_batches), "event_batches": len(plan.event_batches)}
        if f.build is None:
            return dg.MaterializeResult(metadata={**meta, "dagster/row_count": 0})
        build, export = f.build, f.export
        return dg.MaterializeResult(metadata={
            **meta, "dagster/row_count": export.rows, "dataset_id": build.dataset["id"],
            "dagster/table_name": build.table, "query_id": build.query["id"] if build.query else "reused",
            "flow_id": export.flow["id"], "run_id": export.run_id, "dagster/uri": store.uri(export.folder),
            "sql": sql_md(build.sql),
        })

    scores_key = m.key("propensity_scores")

    @dg.asset(key=scores_key, group_name=m.group(SCORING), deps=[m.key("scoring_features"), m.key("propensity_model")],
              kinds={"lightgbm", "parquet"},
              check_specs=[
                  dg.AssetCheckSpec("scores_valid", asset=scores_key, blocking=m.writes_back,
                                    description="Every eligible profile is scored once, with a propensity in "
                                                "[0, 1] and three reason codes."),
                  # The gate protects only the write-back: a dry run has none, so there it warns and never blocks.
                  dg.AssetCheckSpec("drift", asset=scores_key, blocking=m.writes_back,
                                    description="The scores and the features (weighted by the model's importance) "
                                                "against the rows the model was validated on: warns above "
                                                "gates.drift.warn; blocks the write-back above gates.drift.block, "
                                                "on a broken feature or on a population that shrank."),
              ])
    def propensity_scores(context: dg.AssetExecutionContext, config: ScoreConfig, storage: StorageResource,
                          mlflow: MLflowResource) -> dg.MaterializeResult:
        """Calibrated propensity, 0-100 score, percentile, decile, band, expiry and the top three reason codes
        for every eligible profile, with the model version, in a Parquet file whose columns include
        profile_id (the identity value as the source holds it) and propensity. Band thresholds come from the
        model's held-out gains. The scoring is a job handed off through Dagster Pipes (the YAML's
        scoring.engine: a chunked subprocess by default, or Spark), which reports its logs and metadata back. An
        incremental run rescores only the profiles scoring_features covered and merges them into the published
        scores."""
        registry = mlflow.registry()
        runner = job_runner(context, scoring_settings(spec.scoring, config.engine))
        r = score_profiles(storage.get(), registry, spec, names,
                           BandPolicy(config.high_band, config.reach, config.target_precision, config.medium_reach),
                           config.drift_policy(spec), runner,
                           valid_days=config.valid_days or spec.scoring.valid_days, reason_method=config.reason_method)
        model, plan, bands, drift, policy, scored = r.model, r.plan, r.bands, r.drift, r.policy, r.scored
        summary = scored.summary
        psi = drift.psi if drift else {}
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": summary.rows, "dagster/uri": r.uri, "model_version": model.version,
                "mlflow_model": f"models:/{registry.registered_name(m.name)}@champion",
                "mlflow_model_version": model.registered_version,
                "mode": plan.mode, "reason": plan.reason, "rescored_profiles": scored.rescored,
                "converted_since_last_score": scored.converted, "changed_rows": scored.changed_rows,
                "already_converted": scored.already_converted,
                **(scored.job.metadata if scored.job else {"engine": "none: nothing new to score"}),
                "mean_propensity": summary.mean_propensity,
                "high_min_percentile": bands.high_min_percentile,
                "medium_min_percentile": bands.medium_min_percentile,
                **{f"{band}_expected_conversion_rate": rate for band, rate in r.expected.items()},
                **{f"{band}_expected_value": value for band, value in r.expected_value.items()},
                "goal_kind": spec.goal.kind,
                "score_psi": psi.get(SCORE, float("nan")), "max_feature_psi": max(
                    (v for k, v in psi.items() if k != SCORE), default=float("nan")),
                "weighted_feature_psi": drift.weighted_psi if drift else float("nan"),
                "write_back": "enabled" if m.writes_back else "dry run: nothing goes to AEP",
                "bands": md_table(summary.bands_table()),
                "score_distribution": dg.MetadataValue.md(markdown_image(
                    "Scores by band", score_distribution_plot(summary.histogram))),
                "preview": md_table(summary.preview()),
            },
            check_results=[
                check_result(context, "scores_valid", summary.valid, {
                    "rows": summary.rows, "rescored_profiles": scored.rescored, "duplicate_ids": summary.duplicate_ids,
                    "out_of_range": summary.out_of_range, "missing_reasons": summary.missing_reasons},
                    why=f"{summary.rows} scores for {summary.eligible_rows} eligible profiles, "
                        f"{summary.duplicate_ids} duplicate ids, {summary.out_of_range} propensities outside [0, 1], "
                        f"{summary.missing_reasons} rows without three reason codes",
                    fix="rescore in full (scoring_features config mode: full); if it persists, the scoring job's "
                        "log in this run says which chunk went wrong"),
                _drift_result(context, drift, policy, severity=spec.gates.drift.severity if m.writes_back
                              else "warn"),
            ],
        )

    return [scoring_features, propensity_scores]


def _drift_result(context: dg.AssetExecutionContext, drift: DriftAssessment | None, policy: DriftPolicy, *,
                  severity: str) -> dg.AssetCheckResult:
    if drift is None:
        return check_result(context, "drift", True, {"verdict": "no drift reference: retrain the model to get one"})
    table = pl.DataFrame({"column": list(drift.psi), "psi": list(drift.psi.values())}).with_columns(
        pl.col("psi").round(4))
    meta = {"verdict": drift.verdict, "warn_above": policy.warn, "block_above": policy.block,
            "score_psi": drift.score_psi, "weighted_feature_psi": drift.weighted_psi,
            "scored_profiles": drift.rows, "validated_profiles": drift.reference_rows,
            "broken_features": dg.MetadataValue.json(drift.broken), "findings": dg.MetadataValue.json(
                list(drift.reasons)), "psi": md_table(table, rows=12)}
    fix = ("look at the broken features' source (a dataset replaced, an event type or identity that stopped "
           "arriving) and fix the data, or retrain the model on the new data; gates.drift in the model's YAML sets "
           "the thresholds") if drift.verdict == "block" else "retrain when it persists"
    return check_result(context, "drift", drift.verdict == "ok", meta, why="; ".join(drift.reasons), fix=fix,
                        severity=severity if drift.verdict == "block" else "warn")
