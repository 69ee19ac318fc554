"""The model stage of a model instance as one function: train, judge (oracle, leakage, champion) and save."""

import json
from dataclasses import dataclass

import polars as pl

from ..aep import AEPClient
from ..ml.drift import DriftReference
from ..ml.feature_set import FeatureSet
from ..ml.features import ADOBE_FEATURES
from ..ml.train import TrainedModel, TrainingConfig, train_model
from ..storage import Storage
from .evaluation import ChampionComparison, OracleComparison, compare_with_champion, compare_with_oracle
from .features import resolve_sources
from .handoff import TrainingExport
from .leakage import LeakageResult, check_leakage
from .model_store import current_version, save_model
from .naming import Names
from .spec import ModelSpec


@dataclass(frozen=True)
class ModelRun:
    model: TrainedModel
    design: str  # temporal | adobe_compatible
    oracle: OracleComparison
    leakage: LeakageResult
    champion: ChampionComparison
    previous_version: str | None
    uris: dict[str, str]


def train_propensity_model(client: AEPClient, store: Storage, spec: ModelSpec, names: Names,
                           config: TrainingConfig, *, leakage_sample_per_split: int = 100) -> ModelRun:
    """Train on the exported rows with the model version's feature set, judge the model against the oracle
    (simulated sources), the raw events (no_leakage) and the previous version, and save it with its card."""
    pointer = TrainingExport.load(store, names.training_export, asset=f"{names.model}/training_export")
    frame = store.read_parquet(pointer.keys)
    fs = FeatureSet.from_json(json.loads(store.read_bytes(names.feature_set)))
    adobe = not set(fs.names) <= set(frame.columns)
    previous = current_version(store, names.model_pointer)
    model = train_model(frame, ADOBE_FEATURES if adobe else fs.names, config)
    oracle = compare_with_oracle(store, names.simulation_truth, model, pointer.test_cutoff, pointer.horizon_days)
    leakage = check_leakage(client, store, frame, fs, resolve_sources(client, spec, names), names,
                            per_split=leakage_sample_per_split, seed=config.seed)
    champion = compare_with_champion(store, previous, model, frame, names.models)
    design = "adobe_compatible" if adobe else "temporal"
    train_rows = frame.filter(pl.col("split") == "train")
    reference = DriftReference.fit(train_rows, model.features, model.predict(train_rows))
    uris = save_model(store, model, names.model_pointer, pointer.keys, reference, root=names.models, extra_card={
        "design": design, "oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle,
        "no_leakage": leakage.passed, "test_cutoff": pointer.test_cutoff, "horizon_days": pointer.horizon_days,
        "feature_set": fs.to_json(), "model": names.model})
    return ModelRun(model, design, oracle, leakage, champion, previous, uris)
