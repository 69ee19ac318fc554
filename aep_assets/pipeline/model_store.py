"""Models in storage: LightGBM's text format plus JSON, never pickled. Every version is kept; which one scores
is MLflow's to say (the registered model's ``champion`` alias, tracking/registry.py), and nothing here.

``<model>/models/{version}/`` holds model.txt, model.json, model_card.json (with the calibration map) and
holdout.parquet (the temporal holdout's predictions, from which audience bands are chosen) and
drift_reference.json (the validated rows' histograms of the score and of every feature), and for a value goal
value_model.txt (the E[value | some] regressor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from ..ml.calibration import Calibrator
from ..ml.drift import DriftReference
from ..ml.train import TrainedModel, load_model
from ..ml.value import ValueModel
from ..storage import Storage

if TYPE_CHECKING:
    import lightgbm as lgb


@dataclass(frozen=True)
class ModelFiles:
    """Where a version's files are (URIs)."""

    model_text: str
    model_json: str
    model_card: str
    holdout: str
    drift_reference: str
    value_model: str | None = None  # a value goal's regressor


@dataclass
class StoredModel:
    version: str
    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    card: dict
    holdout: pl.DataFrame
    drift_reference: DriftReference | None = None  # None for models saved before drift was tracked
    registered_version: str = ""  # the MLflow model version it was loaded as, if any
    value: ValueModel | None = None  # a value goal's E[value | some] regressor


def save_model(storage: Storage, model: TrainedModel, training_keys: list[str], reference: DriftReference, *,
               root: str, extra_card: dict | None = None) -> ModelFiles:
    """The version's folder; it scores once MLflow names it champion."""
    base = f"{root}/{model.version}"
    card = {**model.card(), "training_files": training_keys, **(extra_card or {})}
    return ModelFiles(
        model_text=storage.write_bytes(f"{base}/model.txt", model.to_text().encode()),
        model_json=storage.write_bytes(f"{base}/model.json", model.to_json().encode()),
        model_card=storage.write_bytes(f"{base}/model_card.json", json.dumps(card, indent=2).encode()),
        holdout=storage.write_parquet(f"{base}/holdout.parquet", model.holdout),
        drift_reference=storage.write_bytes(f"{base}/drift_reference.json", json.dumps(reference.to_json()).encode()),
        value_model=(storage.write_bytes(f"{base}/value_model.txt", model.value.to_text().encode())
                     if model.value is not None else None))


def load_model_card(storage: Storage, version: str, root: str) -> dict:
    """A version's card alone (its feature set among it): no LightGBM needed."""
    return json.loads(storage.read_bytes(f"{root}/{version}/model_card.json"))


def load_model_version(storage: Storage, version: str, root: str) -> StoredModel:
    base = f"{root}/{version}"
    card = load_model_card(storage, version, root)
    booster, calibrator, features = load_model(storage.read_bytes(f"{base}/model.txt").decode(), card)
    reference = (DriftReference.from_json(json.loads(storage.read_bytes(f"{base}/drift_reference.json")))
                 if storage.exists(f"{base}/drift_reference.json") else None)
    value = (ValueModel.from_text(storage.read_bytes(f"{base}/value_model.txt").decode(), features,
                                  card.get("value_rows", 0), card.get("value_scale", 1.0))
             if storage.exists(f"{base}/value_model.txt") else None)
    return StoredModel(version, booster, calibrator, features, card, storage.read_parquet([f"{base}/holdout.parquet"]),
                       reference, value=value)
