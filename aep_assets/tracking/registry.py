"""Model versions in MLflow, where Databricks, SageMaker and MLflow users already track and promote models.

Each training run of a model instance is an MLflow run (parameters, headline metrics, the gains table and
plots as artifacts, tags tying it to the Dagster run and the AEP data it read). The LightGBM Booster is
logged with ``mlflow.lightgbm`` (LightGBM's own text format) and a signature, as a version of a registered
model named after the instance. The alias ``champion`` marks the version that scores; a new version takes
it only when its gates passed, and otherwise becomes ``challenger``.

Only the tracking URI says where MLflow lives (a SQLite file, a tracking server, Databricks); credentials
such as ``MLFLOW_TRACKING_TOKEN`` stay in the environment, where MLflow reads them itself.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import polars as pl

if TYPE_CHECKING:
    import lightgbm as lgb

CHAMPION, CHALLENGER = "champion", "challenger"
VERSION_TAG = "aep_assets.model_version"  # our content-addressed version, which names the storage folder


@dataclass(frozen=True)
class TrainingLog:
    """What one training run leaves in MLflow."""

    params: dict
    metrics: dict[str, float]
    tables: dict[str, pl.DataFrame]  # logged as CSV
    plots: dict[str, str]  # name -> base64 PNG
    tags: dict[str, str]
    card: dict


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str  # MLflow's model version number
    run_id: str
    experiment_id: str
    alias: str  # champion or challenger
    model_version: str  # aep_assets' own version

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class ModelRegistry:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None, prefix: str = "") -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri, self.artifact_root, self.prefix = tracking_uri, artifact_root, prefix
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def __repr__(self) -> str:  # a tracking URI may carry a password: never show it
        return f"ModelRegistry(prefix={self.prefix!r})"

    def registered_name(self, model: str) -> str:
        return f"{self.prefix}{model}"

    def experiment_id(self, model: str) -> str:
        name = f"aep_assets/{model}"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = Path(self.artifact_root, model).resolve().as_uri() if self.artifact_root else None
        return self.client.create_experiment(name, artifact_location=location)

    def log_training(self, model: str, booster: lgb.Booster, features: tuple[str, ...], model_version: str,
                     log: TrainingLog, *, promote: bool) -> RegisteredVersion:
        """One MLflow run with everything about the training, the Booster as a model version (reused when this
        exact version is already registered), and the alias it earns."""
        import mlflow
        import mlflow.lightgbm
        from mlflow.entities import Metric, Param
        from mlflow.models import infer_signature

        name = self.registered_name(model)
        experiment = self.experiment_id(model)
        run = self.client.create_run(experiment, tags={**log.tags, VERSION_TAG: model_version},
                                     run_name=f"{model} {model_version}")
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_id, params=[Param(k, str(v)[:6000]) for k, v in log.params.items()],
                metrics=[Metric(k, float(v), now, 0) for k, v in log.metrics.items()
                         if v is not None and np.isfinite(v)])
            with tempfile.TemporaryDirectory() as tmp:
                for table, frame in log.tables.items():
                    frame.write_csv(Path(tmp, f"{table}.csv"))
                for plot, png in log.plots.items():
                    Path(tmp, f"{plot}.png").write_bytes(base64.b64decode(png))
                Path(tmp, "model_card.json").write_text(json.dumps(log.card, indent=1, default=str))
                self.client.log_artifacts(run_id, tmp, artifact_path="evaluation")
            existing = self._version_of(name, model_version)
            if existing is None:
                example = pd.DataFrame(np.zeros((1, len(features))), columns=list(features))
                signature = infer_signature(example, np.zeros(1))
                with mlflow.start_run(run_id=run_id):
                    # The flavour's own requirements: inferring them imports the model in a subprocess (seconds).
                    info = mlflow.lightgbm.log_model(
                        booster, name="model", signature=signature, registered_model_name=name,
                        pip_requirements=mlflow.lightgbm.get_default_pip_requirements())
                version = str(info.registered_model_version)
                self.client.set_model_version_tag(name, version, VERSION_TAG, model_version)
            else:
                version = existing
            self.client.set_terminated(run_id)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        alias = CHAMPION if promote else CHALLENGER
        self.client.set_registered_model_alias(name, alias, version)
        if promote:  # the challenger alias is for a newer version that did not take over
            current = self._alias_version(name, CHALLENGER)
            if current is not None and int(current) <= int(version):
                self.client.delete_registered_model_alias(name, CHALLENGER)
        return RegisteredVersion(name, version, run_id, experiment, alias, model_version)

    def _version_of(self, name: str, model_version: str) -> str | None:
        try:
            versions = self.client.search_model_versions(f"name = '{name}'")
        except Exception:  # noqa: BLE001 - no such registered model yet
            return None
        for v in versions:
            if v.tags.get(VERSION_TAG) == model_version:
                return str(v.version)
        return None

    def _alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def champion(self, model: str) -> RegisteredVersion | None:
        """The version that scores, or None when no version has passed its gates yet."""
        from mlflow.exceptions import MlflowException

        name = self.registered_name(model)
        try:
            mv = self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None
        run = self.client.get_run(mv.run_id)
        return RegisteredVersion(name, str(mv.version), mv.run_id, run.info.experiment_id, CHAMPION,
                                 mv.tags.get(VERSION_TAG, ""))

    def load_booster(self, version: RegisteredVersion) -> lgb.Booster:
        """The booster of exactly ``version`` (``models:/<name>/<number>``): an alias moved since it was
        resolved changes nothing."""
        import mlflow.lightgbm

        return mlflow.lightgbm.load_model(version.uri)

    def aliases(self, model: str) -> dict[str, str]:
        """alias -> MLflow version number."""
        return {a: v for a in (CHAMPION, CHALLENGER)
                if (v := self._alias_version(self.registered_name(model), a)) is not None}
