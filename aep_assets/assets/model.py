"""The propensity model: trained at T1, calibrated, judged on the temporal holdout at T2 and against the oracle."""

import dagster as dg
import polars as pl
from pydantic import Field

from ..ml import plots
from ..ml.train import TrainingConfig
from ..pipeline.model_stage import HEADLINE, Gates, train_propensity_model
from ..resources import AEPResource, MLflowResource, StorageResource, dagster_ui_url
from .instance import MODEL, Instance
from .metadata import md_table


class ModelConfig(dg.Config):
    seed: int = Field(default=7, description="Seed of the folds, the search and LightGBM.")
    trials: int = Field(default=8, description="Hyperparameter settings tried (the first is the default).")
    prune_trials: bool = Field(default=True, description="Stop a trial early once it cannot catch the best "
                                                         "earlier trial; false trains every trial until its own "
                                                         "early stopping.")
    calibration: str = Field(default="isotonic", description="'isotonic' or 'platt', fitted on a held-out fold.")
    auc_floor: float = Field(default=0.65, description="Blocking: temporal-holdout ROC AUC must reach this "
                                                       "(Customer AI calls below 0.65 poor).")
    max_ece: float = Field(default=0.05, description="Blocking: expected calibration error must not exceed this.")
    leakage_sample_per_split: int = Field(default=100, description="Rows per split recomputed by no_leakage.")
    champion_tolerance: float = Field(default=0.01, description="Warn when the new model's AUC is this far below "
                                                                "the previous model's on the same rows.")


def build(m: Instance) -> list:
    names, key = m.names, m.key("propensity_model")
    deps = [m.key("training_export"), *([m.key("simulation_truth")] if m.spec.simulated else [])]

    @dg.asset(
        key=key, group_name=m.group(MODEL), deps=deps, kinds={"lightgbm"},
        check_specs=[
            dg.AssetCheckSpec("auc_floor", asset=key, blocking=True,
                              description="Temporal-holdout ROC AUC is at least the configured floor."),
            dg.AssetCheckSpec("calibrated", asset=key, blocking=True,
                              description="Temporal-holdout ECE is at most the configured maximum."),
            dg.AssetCheckSpec("no_leakage", asset=key, blocking=True,
                              description="A sample of feature rows, recomputed in Python from the raw events "
                                          "strictly before each cutoff, matches the feature table; so do the "
                                          "labels."),
            dg.AssetCheckSpec("champion_challenger", asset=key,
                              description="The new model is not worse than the previous one on the same holdout."),
        ],
    )
    def propensity_model(context: dg.AssetExecutionContext, config: ModelConfig, aep: AEPResource,
                         storage: StorageResource, mlflow: MLflowResource) -> dg.MaterializeResult:
        """LightGBM trained on the split-'train' rows (cutoff T1) with early stopping and a small hyperparameter
        search, calibrated on a held-out fold, and evaluated on the temporal holdout (cutoff T2). Saved in
        LightGBM's text format plus JSON and a model card (with the feature set), one folder per version, and
        logged to MLflow as a version of the registered model named after the instance: the alias 'champion'
        (the version that scores) when every gate passed, 'challenger' otherwise."""
        run = train_propensity_model(
            aep.client(), storage.get(), mlflow.registry(), m.spec, names,
            TrainingConfig(seed=config.seed, trials=config.trials, prune_trials=config.prune_trials,
                           calibration=config.calibration),
            Gates(config.auc_floor, config.max_ece, config.champion_tolerance),
            leakage_sample_per_split=config.leakage_sample_per_split,
            tags={"dagster.run_id": context.run.run_id, "dagster.asset_key": key.to_user_string(),
                  "dagster.run_url": f"{dagster_ui_url()}/runs/{context.run.run_id}"})
        model, oracle, leakage, champion, uris = run.model, run.oracle, run.leakage, run.champion, run.uris
        reg, verdicts = run.registered, run.verdicts
        if oracle.oracle is None:
            context.log.warning("oracle metrics unavailable: %s", oracle.note)
        if not run.promoted:
            failed = [g for g, ok in verdicts.items() if not ok]
            context.log.warning("model %s stays challenger (MLflow version %s): %s did not pass; the champion keeps "
                                "scoring", model.version, reg.version, ", ".join(failed))
        importance = pl.DataFrame({"feature": list(model.feature_importance),
                                   "gain_share": list(model.feature_importance.values())}).sort("gain_share",
                                                                                                descending=True)
        mt = model.metrics
        image = {name: dg.MetadataValue.md(plots.markdown_image(title, run.plots[name])) for name, title in (
            ("roc", "ROC"), ("gains", "Gains"), ("reliability", "Reliability"), ("scores", "Scores"))}
        return dg.MaterializeResult(
            metadata={
                **{k: float(mt[k]) for k in HEADLINE},
                "oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle,
                "oracle_note": oracle.note,
                **{f"random_split_{k}": float(model.random_split_metrics[k]) for k in ("roc_auc", "pr_auc", "ece")},
                "design": run.design, "model_version": model.version, "code_version": model.code_version,
                "previous_version": run.previous_version or "none", "rows": dg.MetadataValue.json(model.rows),
                "features": dg.MetadataValue.json(list(model.features)),
                "mlflow_registered_model": reg.name, "mlflow_model_version": reg.version, "mlflow_alias": reg.alias,
                "mlflow_run": dg.MetadataValue.url(
                    f"{mlflow.ui_url}/#/experiments/{reg.experiment_id}/runs/{reg.run_id}"),
                "mlflow_model": dg.MetadataValue.url(f"{mlflow.ui_url}/#/models/{reg.name}/versions/{reg.version}"),
                "gains_by_decile": md_table(run.gains.with_columns(pl.col(pl.Float64).round(4))),
                "roc_curve": image["roc"], "gains_chart": image["gains"],
                "reliability_diagram": image["reliability"], "score_histogram": image["scores"],
                "feature_importance": md_table(importance.with_columns(pl.col("gain_share").round(4)), rows=12),
                "hyperparameter_trials": md_table(pl.DataFrame(model.trials).sort("valid_log_loss"), rows=20),
                "model_card": dg.MetadataValue.json({k: v for k, v in model.card().items() if k != "trials"}),
                "dagster/uri": uris["model_text"], "model_json": uris["model_json"],
                "model_card_uri": uris["model_card"],
            },
            check_results=[
                dg.AssetCheckResult(check_name="auc_floor", passed=verdicts["auc_floor"],
                                    metadata={"roc_auc": mt["roc_auc"], "floor": config.auc_floor}),
                dg.AssetCheckResult(check_name="calibrated", passed=verdicts["calibrated"],
                                    metadata={"ece": mt["ece"], "max_ece": config.max_ece}),
                dg.AssetCheckResult(check_name="no_leakage", passed=verdicts["no_leakage"], metadata={
                    "rows_checked": leakage.rows_checked, "mismatched_rows": leakage.mismatched_rows,
                    "mismatches_by_column": dg.MetadataValue.json(leakage.mismatches_by_column),
                    "examples": dg.MetadataValue.json(leakage.examples)}),
                dg.AssetCheckResult(
                    check_name="champion_challenger", passed=verdicts["champion_challenger"],
                    severity=dg.AssetCheckSeverity.WARN, metadata={
                        "champion_version": champion.champion_version or "none",
                        "champion_roc_auc": champion.champion_roc_auc if champion.champion_roc_auc
                        is not None else float("nan"),
                        "challenger_roc_auc": champion.challenger_roc_auc, "tolerance": config.champion_tolerance,
                        "mlflow_alias": reg.alias}),
            ],
        )

    return [propensity_model]
