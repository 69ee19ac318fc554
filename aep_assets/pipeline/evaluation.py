"""What a trained model is judged by: the oracle on the same rows, and the model it would replace."""

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from ..ml.feature_set import ID, LABEL, feature_matrix
from ..ml.train import TrainedModel
from ..storage import Storage
from .model_store import load_model_version


@dataclass
class OracleComparison:
    oracle_roc_auc: float
    auc_to_oracle: float
    oracle: np.ndarray | None  # per holdout row, in holdout order
    note: str


def compare_with_oracle(storage: Storage, truth_key: str, model: TrainedModel, test_cutoff: str,
                        horizon_days: int) -> OracleComparison:
    """The oracle probability scored on exactly the model's temporal-holdout rows."""
    from sklearn.metrics import roc_auc_score
    nan = float("nan")
    if not storage.exists(truth_key):
        return OracleComparison(nan, nan, None, "no simulation_truth in storage: materialise it first")
    truth = storage.read_parquet([truth_key])
    if truth.is_empty():
        return OracleComparison(nan, nan, None, "simulation_truth is empty")
    same_design = (truth["cutoff"][0] == datetime.fromisoformat(test_cutoff)
                   and int(truth["horizon_days"][0]) == horizon_days)
    if not same_design:
        return OracleComparison(nan, nan, None, f"simulation_truth is at cutoff {truth['cutoff'][0]} with horizon "
                                f"{truth['horizon_days'][0]}, not the holdout's {test_cutoff} / {horizon_days}: "
                                "materialise simulation_truth again")
    joined = model.holdout.join(truth.select(pl.col("userid").alias(ID), "oracle_probability"), on=ID, how="left")
    oracle = joined["oracle_probability"].to_numpy()
    if np.isnan(oracle).any():
        return OracleComparison(nan, nan, None, f"{int(np.isnan(oracle).sum())} holdout profiles have no oracle "
                                "probability: the feature table and the simulation differ")
    auc = float(roc_auc_score(joined[LABEL].to_numpy(), oracle))
    return OracleComparison(auc, model.metrics["roc_auc"] / auc, oracle, "scored on the same holdout rows")


@dataclass
class ChampionComparison:
    champion_version: str | None
    champion_roc_auc: float | None
    challenger_roc_auc: float

    def passed(self, tolerance: float) -> bool:
        return self.champion_roc_auc is None or self.challenger_roc_auc >= self.champion_roc_auc - tolerance


def compare_with_champion(storage: Storage, champion_version: str | None, model: TrainedModel,
                          frame: pl.DataFrame, root: str) -> ChampionComparison:
    """The previous model, scored on the new model's temporal holdout (when it can read those rows)."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    test = frame.filter(pl.col("split") == "test")
    if champion_version is None or champion_version == model.version:
        return ChampionComparison(None, None, model.metrics["roc_auc"])
    try:
        champion = load_model_version(storage, champion_version, root)
    except (KeyError, ValueError, FileNotFoundError, lgb.basic.LightGBMError):  # saved by an older version
        return ChampionComparison(champion_version, None, model.metrics["roc_auc"])
    if not set(champion.features) <= set(test.columns):
        return ChampionComparison(champion_version, None, model.metrics["roc_auc"])
    p = champion.calibrator.apply(champion.booster.predict(feature_matrix(test, champion.features)))
    return ChampionComparison(champion_version, float(roc_auc_score(test[LABEL].to_numpy(), p)),
                              model.metrics["roc_auc"])
