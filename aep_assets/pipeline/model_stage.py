"""The model stage of a model instance as one function: train, judge (gates, oracle, leakage, champion), save,
and register in MLflow, where a version that passes every gate becomes the champion that scores."""

import json
from dataclasses import dataclass, field

import polars as pl

from ..aep import AEPClient
from ..ml import plots
from ..ml.drift import DriftReference
from ..ml.feature_set import LABEL, FeatureSet
from ..ml.features import ADOBE_FEATURES
from ..ml.metrics import gains, reliability
from ..ml.train import TrainedModel, TrainingConfig, train_model
from ..storage import Storage
from ..tracking.registry import ModelRegistry, RegisteredVersion, TrainingLog
from .evaluation import ChampionComparison, OracleComparison, compare_with_champion, compare_with_oracle
from .features import resolve_sources
from .handoff import TrainingExport
from .leakage import LeakageResult, check_leakage
from .model_store import current_version, save_model, set_current
from .naming import Names
from .spec import ModelSpec

HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_precision", "top_decile_lift",
            "positive_rate")


@dataclass(frozen=True)
class Gates:
    auc_floor: float = 0.65
    max_ece: float = 0.05
    champion_tolerance: float = 0.01
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))  # check -> error | warn

    def deciding(self) -> set[str]:
        """The checks whose failure keeps a new model challenger: each of severity error, and always the
        champion comparison (a model that loses to the champion never replaces it)."""
        return {g for g, s in self.severity.items() if s == "error"} | {"champion_challenger"}


DEFAULT_SEVERITY = {"auc_floor": "error", "calibrated": "error", "no_leakage": "error", "champion_challenger": "warn"}


@dataclass(frozen=True)
class ModelRun:
    model: TrainedModel
    design: str  # temporal | adobe_compatible
    oracle: OracleComparison
    leakage: LeakageResult
    champion: ChampionComparison
    previous_version: str | None
    uris: dict[str, str]
    verdicts: dict[str, bool]  # gate -> passed: auc_floor, calibrated, no_leakage, champion_challenger
    gains: pl.DataFrame
    plots: dict[str, str]  # name -> base64 PNG: roc, gains, reliability, scores
    registered: RegisteredVersion
    promoted: bool  # every deciding gate passed: the version is the champion


def drift_reference(model: TrainedModel, frame: pl.DataFrame, fs: FeatureSet, test_cutoff: str) -> DriftReference:
    """The rows the model was validated on (the temporal holdout at the test cutoff): what its gates passed on, and
    what scoring is compared with."""
    validated = frame.filter(pl.col("split") == "test")
    return DriftReference.fit(validated, model.features, model.predict(validated),
                              importance=model.feature_importance, clock=fs.clock, cutoff=test_cutoff)


def train_propensity_model(client: AEPClient, store: Storage, registry: ModelRegistry, spec: ModelSpec,
                           names: Names, config: TrainingConfig, gates: Gates, *, leakage_sample_per_split: int = 100,
                           tags: dict[str, str] | None = None) -> ModelRun:
    """Train on the exported rows with the model version's feature set, judge the model against its gates, the
    oracle (simulated sources), the raw events (no_leakage) and the champion, save it with its card, and log it
    to MLflow. It becomes the champion (and the model scoring loads) only when every gate passed."""
    pointer = TrainingExport.load(store, names.training_export, asset=f"{names.model}/training_export")
    frame = store.read_parquet(pointer.keys)
    fs = FeatureSet.from_json(json.loads(store.read_bytes(names.feature_set)))
    adobe = not set(fs.names) <= set(frame.columns)
    previous = current_version(store, names.model_pointer)
    model = train_model(frame, ADOBE_FEATURES if adobe else fs.names, config)
    if fs.goal_value:
        model.add_value(frame, seed=config.seed)
    oracle = (compare_with_oracle(store, names.simulation_truth, model, pointer.test_cutoff, pointer.horizon_days)
              if spec.simulated else OracleComparison(float("nan"), float("nan"), None, "no simulation: an org's data"))
    leakage = check_leakage(client, store, frame, fs, resolve_sources(client, spec, names), names,
                            per_split=leakage_sample_per_split, seed=config.seed)
    champion = compare_with_champion(store, previous, model, frame, names.models)
    design = "adobe_compatible" if adobe else "temporal"
    reference = drift_reference(model, frame, fs, pointer.test_cutoff)
    simulated = {"oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle} if spec.simulated \
        else {}
    card = {"design": design, **simulated,
            "no_leakage": leakage.passed, "test_cutoff": pointer.test_cutoff, "horizon_days": pointer.horizon_days,
            "feature_set": fs.to_json(), "model": names.model}
    uris = save_model(store, model, pointer.keys, reference, root=names.models, extra_card=card)
    verdicts = {"auc_floor": model.metrics["roc_auc"] >= gates.auc_floor,
                "calibrated": model.metrics["ece"] <= gates.max_ece, "no_leakage": leakage.passed,
                "champion_challenger": champion.passed(gates.champion_tolerance)}
    y, p = model.holdout[LABEL].to_numpy(), model.holdout["propensity"].to_numpy()
    table = gains(y, p)
    pictures = {"roc": plots.roc_plot(y, p, oracle.oracle), "gains": plots.gains_plot(table),
                "reliability": plots.reliability_plot(reliability(y, p)), "scores": plots.histogram_plot(y, p)}
    sources = resolve_sources(client, spec, names)
    batches = sorted(b for ds in sources.dataset_ids for b in client.ingestion.active_batch_ids(ds))
    log = TrainingLog(
        params={**model.params, "trials": config.trials, "prune_trials": config.prune_trials,
                "calibration": config.calibration, "design": design,
                "horizon_days": pointer.horizon_days, "test_cutoff": pointer.test_cutoff,
                "features": len(model.features)},
        metrics={**{k: float(model.metrics[k]) for k in HEADLINE}, **{k: float(v) for k, v in simulated.items()
                                                                         if k == "oracle_roc_auc"},
                 **{f"value_{k}": float(v) for k, v in model.value_metrics.items()},
                 **{f"random_split_{k}": float(model.random_split_metrics[k]) for k in ("roc_auc", "ece")}},
        tables={"gains_by_decile": table}, plots=pictures,
        tags={**(tags or {}), "aep_assets.model": names.model, "aep_assets.code_version": model.code_version,
              "aep_assets.training_rows": ",".join(pointer.keys)[:4000],
              "aep.training_dataset_id": pointer.dataset_id, "aep.source_dataset_ids": ",".join(sources.dataset_ids),
              "aep.source_batch_ids": ",".join(batches)[:7000], "aep.training_export_run_id": pointer.run_id},
        card={**model.card(), **card})
    promoted = all(verdicts[g] for g in gates.deciding())
    registered = registry.log_training(names.model, model.booster, model.features, model.version, log,
                                       promote=promoted)
    if promoted:  # the storage pointer follows the champion: what scoring and the next comparison read
        set_current(store, names.model_pointer, model.version, root=names.models)
    return ModelRun(model, design, oracle, leakage, champion, previous, uris, verdicts, table, pictures, registered,
                    promoted)
