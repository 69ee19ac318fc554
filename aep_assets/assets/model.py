"""The propensity model: trained at T1, calibrated, judged on the temporal holdout at T2 and against the oracle."""

import dagster as dg
import polars as pl
from pydantic import Field

from ..ml import plots
from ..ml.train import TrainingConfig
from ..pipeline.model_stage import HEADLINE, Gates, train_propensity_model
from ..pipeline.spec import ModelSpec
from ..resources import AEPResource, MLflowResource, StorageResource, dagster_ui_url
from .checks import check_result
from .instance import MODEL, Instance
from .metadata import md_table


class ModelConfig(dg.Config):
    seed: int = Field(default=7, description="Seed of the folds, the search and LightGBM.")
    trials: int = Field(default=8, description="Hyperparameter settings tried (the first is the default).")
    prune_trials: bool = Field(default=True, description="Stop a trial early once it cannot catch the best "
                                                         "earlier trial; false trains every trial until its own "
                                                         "early stopping.")
    calibration: str = Field(default="isotonic", description="'isotonic' or 'platt', fitted on a held-out fold.")
    auc_floor: float | None = Field(default=None, description="This run only: the ROC AUC floor instead of the "
                                    "YAML's gates.auc_floor.min.")
    max_ece: float | None = Field(default=None, description="This run only: instead of gates.calibration.max_ece.")
    leakage_sample_per_split: int | None = Field(default=None, description="This run only: instead of "
                                                 "gates.leakage.sample_per_split.")
    champion_tolerance: float | None = Field(default=None, description="This run only: instead of "
                                             "gates.champion.tolerance.")

    def gates(self, spec: ModelSpec) -> Gates:
        """The YAML's gates, with this run's overrides."""
        g = spec.gates
        return Gates(auc_floor=_either(self.auc_floor, g.auc_floor.min),
                     max_ece=_either(self.max_ece, g.calibration.max_ece),
                     champion_tolerance=_either(self.champion_tolerance, g.champion.tolerance),
                     severity={"auc_floor": g.auc_floor.severity, "calibrated": g.calibration.severity,
                               "no_leakage": g.leakage.severity, "champion_challenger": g.champion.severity})


def _either(override, default):
    return default if override is None else override


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
        gates = config.gates(m.spec)
        run = train_propensity_model(
            aep.client(), storage.get(), mlflow.registry(), m.spec, names,
            TrainingConfig(seed=config.seed, trials=config.trials, prune_trials=config.prune_trials,
                           calibration=config.calibration),
            gates, leakage_sample_per_split=_either(config.leakage_sample_per_split,
                                                    m.spec.gates.leakage.sample_per_split),
            tags={"dagster.run_id": context.run.run_id, "dagster.asset_key": key.to_user_string(),
                  "dagster.run_url": f"{dagster_ui_url()}/runs/{context.run.run_id}"})
        model, oracle, leakage, champion, uris = run.model, run.oracle, run.leakage, run.champion, run.uris
        reg, verdicts = run.registered, run.verdicts
        if oracle.oracle is None and m.spec.simulated:
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
                **{k: float(mt[k]) for k in HEADLINE}, "goal_kind": m.spec.goal.kind,
                **{f"value_{k}": float(v) for k, v in model.value_metrics.items()},
                **({"oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle,
                    "oracle_note": oracle.note} if m.spec.simulated else {}),
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
                check_result(context, "auc_floor", verdicts["auc_floor"],
                             {"roc_auc": mt["roc_auc"], "floor": gates.auc_floor},
                             why=f"temporal-holdout ROC AUC {mt['roc_auc']:.4f} is below the floor {gates.auc_floor}",
                             fix="add features that carry signal (features.events, profile.attributes), widen "
                                 "goal.outcome_days, or lower gates.auc_floor.min in the model's YAML",
                             severity=gates.severity["auc_floor"]),
                check_result(context, "calibrated", verdicts["calibrated"],
                             {"ece": mt["ece"], "max_ece": gates.max_ece},
                             why=f"temporal-holdout ECE {mt['ece']:.4f} is above {gates.max_ece}: the probabilities "
                                 "are off even if the ranking is good",
                             fix="more training rows (earlier cutoffs.train), calibration: platt in the run config, "
                                 "or raise gates.calibration.max_ece",
                             severity=gates.severity["calibrated"]),
                check_result(context, "no_leakage", verdicts["no_leakage"], {
                    "rows_checked": leakage.rows_checked, "mismatched_rows": leakage.mismatched_rows,
                    "mismatches_by_column": dg.MetadataValue.json(leakage.mismatches_by_column),
                    "examples": dg.MetadataValue.json(leakage.examples)},
                    why=f"{leakage.mismatched_rows} of {leakage.rows_checked} sampled feature rows differ from "
                        f"their recomputation from the raw events before the cutoff "
                        f"(by column: {leakage.mismatches_by_column})",
                    fix="a feature or label reads events at or after its cutoff; check the SQL in "
                        "feature_table's metadata and the examples in this check",
                    severity=gates.severity["no_leakage"]),
                check_result(
                    context, "champion_challenger", verdicts["champion_challenger"], {
                        "champion_version": champion.champion_version or "none",
                        "champion_roc_auc": champion.champion_roc_auc if champion.champion_roc_auc
                        is not None else float("nan"),
                        "challenger_roc_auc": champion.challenger_roc_auc, "tolerance": gates.champion_tolerance,
                        "mlflow_alias": reg.alias},
                    why=f"the new model's ROC AUC {champion.challenger_roc_auc:.4f} is more than "
                        f"{gates.champion_tolerance} below the champion's {champion.champion_roc_auc} on the same "
                        "rows; the champion keeps scoring",
                    fix="keep the champion, or raise gates.champion.tolerance to let the new model replace it",
                    severity=gates.severity["champion_challenger"]),
            ],
        )

    return [propensity_model]
