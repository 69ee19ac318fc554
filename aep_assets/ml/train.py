"""Train a LightGBM propensity model with a held-out test split and early stopping on validation."""

import hashlib
import json
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.model_selection import train_test_split

from .features import FEATURES, LABEL, feature_matrix
from .metrics import evaluate

DEFAULT_PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
    "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1,
    "num_threads": 2,
}
CODE_VERSION = "1"


@dataclass
class TrainedModel:
    booster: lgb.Booster
    version: str
    metrics: dict[str, float]
    params: dict
    rows: dict[str, int]
    feature_importance: dict[str, float] = field(default_factory=dict)

    def to_text(self) -> str:
        return self.booster.model_to_string()

    def to_json(self) -> str:
        return json.dumps(self.booster.dump_model())

    def card(self) -> dict:
        return {"version": self.version, "features": list(FEATURES), "label": LABEL, "params": self.params,
                "metrics": self.metrics, "rows": self.rows, "best_iteration": self.booster.best_iteration,
                "feature_importance": self.feature_importance, "code_version": CODE_VERSION}


def model_version(frame: pl.DataFrame, params: dict) -> str:
    """A hash of the training data, the parameters and the code version."""
    digest = hashlib.sha256()
    digest.update(frame.sort("userId").hash_rows(seed=0).to_numpy().tobytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(CODE_VERSION.encode())
    return digest.hexdigest()[:16]


def train_model(frame: pl.DataFrame, *, seed: int = 7, test_size: float = 0.2, valid_size: float = 0.2,
                num_boost_round: int = 2000, early_stopping_rounds: int = 50,
                params: dict | None = None) -> TrainedModel:
    if LABEL not in frame.columns:
        raise ValueError(f"The training frame has no label column {LABEL!r}.")
    y = frame[LABEL].cast(pl.Int32).to_numpy()
    if y.sum() < 10 or (y == 0).sum() < 10:
        raise ValueError(f"The training set has {int(y.sum())} positives and {int((y == 0).sum())} negatives; "
                         "at least 10 of each are needed. Move the cutoff or widen the horizon.")
    x = feature_matrix(frame)
    params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    train, valid = train_test_split(rest, test_size=valid_size / (1 - test_size), stratify=y[rest],
                                    random_state=seed)
    booster = lgb.train(
        params, lgb.Dataset(x[train], y[train], feature_name=list(FEATURES)), num_boost_round=num_boost_round,
        valid_sets=[lgb.Dataset(x[valid], y[valid], feature_name=list(FEATURES))],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
    metrics = evaluate(y[test], booster.predict(x[test], num_iteration=booster.best_iteration))
    gain = booster.feature_importance(importance_type="gain")
    importance = {f: float(g / gain.sum()) if gain.sum() else 0.0 for f, g in zip(FEATURES, gain, strict=True)}
    return TrainedModel(booster, model_version(frame, params), metrics, params,
                        {"train": len(train), "valid": len(valid), "test": len(test)}, importance)


def load_booster(text: str) -> lgb.Booster:
    return lgb.Booster(model_str=text)
