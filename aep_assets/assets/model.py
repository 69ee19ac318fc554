"""The propensity model, trained on the exported training set."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from ..constants import MODEL, MODEL_POINTER, TRAINING_EXPORT_POINTER
from ..ml.train import train_model
from ..pipeline.model_store import save_model
from ..resources import StorageResource
from .metadata import md_table


class ModelConfig(dg.Config):
    seed: int = Field(default=7, description="Seed of the split and of LightGBM.")
    test_size: float = Field(default=0.2, description="Share of rows held out for the reported metrics.")
    learning_rate: float = 0.05
    num_leaves: int = 31


@dg.asset(group_name=MODEL, deps=["training_export"], kinds={"lightgbm"},
          check_specs=[dg.AssetCheckSpec("beats_chance", asset="propensity_model",
                                         description="Held-out ROC AUC is above 0.55 (a warning: small "
                                                     "samples are noisy).")])
def propensity_model(config: ModelConfig, storage: StorageResource) -> dg.MaterializeResult:
    """LightGBM on the exported training set, with a held-out test split and early stopping on a
    validation split. Saved in LightGBM's text format plus JSON, one folder per version."""
    store = storage.get()
    pointer = json.loads(store.read_bytes(TRAINING_EXPORT_POINTER))
    frame = store.read_parquet(pointer["keys"])
    model = train_model(frame, seed=config.seed, test_size=config.test_size,
                        params={"learning_rate": config.learning_rate, "num_leaves": config.num_leaves})
    uris = save_model(store, model, MODEL_POINTER, pointer["keys"])
    importance = pl.DataFrame({"feature": list(model.feature_importance),
                               "gain_share": list(model.feature_importance.values())}).sort("gain_share",
                                                                                            descending=True)
    auc = model.metrics["roc_auc"]
    return dg.MaterializeResult(
        metadata={
            "roc_auc": auc, "pr_auc": model.metrics["pr_auc"], "log_loss": model.metrics["log_loss"],
            "positive_rate": model.metrics["positive_rate"], "model_version": model.version,
            "best_iteration": model.booster.best_iteration, "rows": dg.MetadataValue.json(model.rows),
            "dagster/uri": uris["model_text"], "model_json": uris["model_json"],
            "feature_importance": md_table(importance, rows=14),
        },
        check_results=[dg.AssetCheckResult(check_name="beats_chance", passed=auc > 0.55,
                                           severity=dg.AssetCheckSeverity.WARN,
                                           metadata={"roc_auc": auc, "floor": 0.55, "test_rows": model.rows["test"]})],
    )
