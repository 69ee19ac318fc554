"""The propensity model: trained at T1, calibrated, judged on the temporal holdout at T2 and against the oracle."""

from typing import ClassVar

import dagster as dg
from pydantic import Field

from ..ml.train import TrainingConfig
from ..pipeline.model_stages import train_propensity_model
from ..resources import AEPResource, MLflowResource, StorageResource, dagster_ui_url
from .instance import MODEL, Instance, RunConfig
from .metadata import materialized


class ModelConfig(RunConfig):
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

    YAML_KEYS: ClassVar[dict[str, str]] = {
        "auc_floor": "gates.auc_floor.min", "max_ece": "gates.calibration.max_ece",
        "leakage_sample_per_split": "gates.leakage.sample_per_split", "champion_tolerance": "gates.champion.tolerance"}

    def training(self) -> TrainingConfig:
        return TrainingConfig(seed=self.seed, trials=self.trials, prune_trials=self.prune_trials,
                              calibration=self.calibration)


def build(m: Instance) -> list:
    key = m.key("propensity_model")
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
            m.stage(storage, aep=aep, mlflow=mlflow, config=config), config.training(),
            tags={"dagster.run_id": context.run.run_id, "dagster.asset_key": key.to_user_string(),
                  "dagster.run_url": f"{dagster_ui_url()}/runs/{context.run.run_id}"})
        if run.oracle.oracle is None and m.spec.simulated:
            context.log.warning("oracle metrics unavailable: %s", run.oracle.note)
        if not run.promoted:
            context.log.warning("model %s stays challenger (MLflow version %s): %s did not pass; the champion keeps "
                                "scoring", run.model.version, run.registered.version, ", ".join(run.verdicts.failed()))
        return materialized(context, run.metadata(mlflow.ui_url), run.checks())

    return [propensity_model]
