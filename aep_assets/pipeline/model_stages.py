"""The model stage of a model instance as one function: train, judge (gates, oracle, leakage, champion), save,
and register in MLflow, where a version that passes every gate becomes the champion that scores."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import polars as pl

from ..ml import plots
from ..ml.adobe_features import ADOBE_FEATURES
from ..ml.drift import DriftReference
from ..ml.feature_set import LABEL, FeatureSet
from ..ml.metrics import gains, reliability
from ..ml.train import TrainedModel, TrainingConfig, temporal_holdout, train_model
from ..tracking.registry import RegisteredVersion, TrainingLog
from . import report
from .evaluation import ChampionComparison, OracleComparison, compare_with_champion, compare_with_oracle
from .handoff import ADOBE_COMPATIBLE, TrainingExport
from .leakage import LeakageResult, check_leakage
from .model_store import ModelFiles, save_model
from .sources import resolve_sources
from .spec import Gates as GateSpec
from .stage_context import StageContext

HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_precision", "top_decile_lift",
            "positive_rate")


@dataclass(frozen=True)
class Gates:
    """The model's gates (the YAML's gates block) as the model stage applies them."""

    auc_floor: float
    max_ece: float
    champion_tolerance: float
    leakage_sample_per_split: int
    severity: dict[str, str]  # check -> error | warn

    @classmethod
    def of(cls, gates: GateSpec) -> "Gates":
        return cls(gates.auc_floor.min, gates.calibration.max_ece, gates.champion.tolerance,
                   gates.leakage.sample_per_split,
                   {"auc_floor": gates.auc_floor.severity, "calibrated": gates.calibration.severity,
                    "no_leakage": gates.leakage.severity, "champion_challenger": gates.champion.severity})

    def deciding(self) -> set[str]:
        """The checks whose failure keeps a new model challenger: each of severity error, and always the
        champion comparison (a model that loses to the champion never replaces it)."""
        return {g for g, s in self.severity.items() if s == "error"} | {"champion_challenger"}


@dataclass(frozen=True)
class Verdicts:
    auc_floor: bool
    calibrated: bool
    no_leakage: bool
    champion_challenger: bool

    def failed(self) -> list[str]:
        return [name for name, passed in asdict(self).items() if not passed]


@dataclass(frozen=True)
class ModelRun:
    model: TrainedModel
    export: TrainingExport  # the rows it was trained on, their feature set and design
    oracle: OracleComparison
    leakage: LeakageResult
    champion: ChampionComparison
    previous: RegisteredVersion | None  # the champion before this run
    files: ModelFiles
    gates: Gates
    verdicts: Verdicts
    gains: pl.DataFrame
    plots: dict[str, str]  # name -> base64 PNG: roc, gains, reliability, scores
    registered: RegisteredVersion
    promoted: bool  # every deciding gate passed: the version is the champion
    simulated: bool
    goal_kind: str

    def metadata(self, mlflow_ui_url: str) -> dict:
        model, oracle, reg, mt = self.model, self.oracle, self.registered, self.model.metrics
        importance = pl.DataFrame({"feature": list(model.feature_importance),
                                   "gain_share": list(model.feature_importance.values())}).sort("gain_share",
                                                                                                descending=True)
        return {
            **{k: float(mt[k]) for k in HEADLINE}, "goal_kind": self.goal_kind,
            **{f"value_{k}": float(v) for k, v in model.value_metrics.items()},
            **({"oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle,
                "oracle_note": oracle.note} if self.simulated else {}),
            **{f"random_split_{k}": float(model.random_split_metrics[k]) for k in ("roc_auc", "pr_auc", "ece")},
            "design": self.export.design, "model_version": model.version, "code_version": model.code_version,
            "previous_version": self.previous.model_version if self.previous else "none",
            "rows": report.Json(model.rows), "features": report.Json(list(model.features)),
            "mlflow_registered_model": reg.name, "mlflow_model_version": reg.version, "mlflow_alias": reg.alias,
            "mlflow_run": report.Url(f"{mlflow_ui_url}/#/experiments/{reg.experiment_id}/runs/{reg.run_id}"),
            "mlflow_model": report.Url(f"{mlflow_ui_url}/#/models/{reg.name}/versions/{reg.version}"),
            "gains_by_decile": report.Table(self.gains.with_columns(pl.col(pl.Float64).round(4))),
            "roc_curve": report.Image("ROC", self.plots["roc"]),
            "gains_chart": report.Image("Gains", self.plots["gains"]),
            "reliability_diagram": report.Image("Reliability", self.plots["reliability"]),
            "score_histogram": report.Image("Scores", self.plots["scores"]),
            "feature_importance": report.Table(importance.with_columns(pl.col("gain_share").round(4)), rows=12),
            "hyperparameter_trials": report.Table(pl.DataFrame(model.trials).sort("valid_log_loss"), rows=20),
            "model_card": report.Json({k: v for k, v in model.card().items() if k != "trials"}),
            "dagster/uri": self.files.model_text, "model_json": self.files.model_json,
            "model_card_uri": self.files.model_card,
        }

    def checks(self) -> list[report.Check]:
        mt, gates, verdicts, leakage, champion = (self.model.metrics, self.gates, self.verdicts, self.leakage,
                                                  self.champion)
        return [
            report.Check("auc_floor", verdicts.auc_floor, {"roc_auc": mt["roc_auc"], "floor": gates.auc_floor},
                         why=f"temporal-holdout ROC AUC {mt['roc_auc']:.4f} is below the floor {gates.auc_floor}",
                         fix="add features that carry signal (features.events, profile.attributes), widen "
                             "goal.outcome_days, or lower gates.auc_floor.min in the model's YAML",
                         severity=gates.severity["auc_floor"]),
            report.Check("calibrated", verdicts.calibrated, {"ece": mt["ece"], "max_ece": gates.max_ece},
                         why=f"temporal-holdout ECE {mt['ece']:.4f} is above {gates.max_ece}: the probabilities "
                             "are off even if the ranking is good",
                         fix="more training rows (earlier cutoffs.train), calibration: platt in the run config, "
                             "or raise gates.calibration.max_ece",
                         severity=gates.severity["calibrated"]),
            report.Check("no_leakage", verdicts.no_leakage, {
                "rows_checked": leakage.rows_checked, "mismatched_rows": leakage.mismatched_rows,
                "mismatches_by_column": report.Json(leakage.mismatches_by_column),
                "examples": report.Json(leakage.examples)},
                why=f"{leakage.mismatched_rows} of {leakage.rows_checked} sampled feature rows differ from "
                    f"their recomputation from the raw events before the cutoff "
                    f"(by column: {leakage.mismatches_by_column})",
                fix="a feature or label reads events at or after its cutoff; check the SQL in "
                    "feature_table's metadata and the examples in this check",
                severity=gates.severity["no_leakage"]),
            report.Check("champion_challenger", verdicts.champion_challenger, {
                "champion_version": champion.champion_version or "none",
                "champion_roc_auc": champion.champion_roc_auc if champion.champion_roc_auc is not None
                else float("nan"),
                "challenger_roc_auc": champion.challenger_roc_auc, "tolerance": gates.champion_tolerance,
                "mlflow_alias": self.registered.alias},
                why=f"the new model's ROC AUC {champion.challenger_roc_auc:.4f} is more than "
                    f"{gates.champion_tolerance} below the champion's {champion.champion_roc_auc} on the same "
                    "rows; the champion keeps scoring",
                fix="keep the champion, or raise gates.champion.tolerance to let the new model replace it",
                severity=gates.severity["champion_challenger"]),
        ]


def drift_reference(model: TrainedModel, frame: pl.DataFrame, fs: FeatureSet, test_cutoff: str) -> DriftReference:
    """The rows the model was validated on (the temporal holdout at the test cutoff): what its gates passed on, and
    what scoring is compared with."""
    validated = temporal_holdout(frame)
    return DriftReference.fit(validated, model.features, model.validated_propensity,
                              importance=model.feature_importance, clock=fs.clock, cutoff=test_cutoff)


def train_propensity_model(stage: StageContext, config: TrainingConfig, *,
                           tags: dict[str, str] | None = None) -> ModelRun:
    """Train on the exported rows with the feature set they were built with, judge the model against its gates
    (the YAML's gates), the oracle (simulated sources), the raw events (no_leakage) and the champion, save it with
    its card, and log it to MLflow. It becomes the champion (the model scoring loads) only when every deciding
    gate passed."""
    client, store, registry, spec, names = stage.client, stage.store, stage.registry, stage.spec, stage.names
    gates = Gates.of(spec.gates)
    export = TrainingExport.load(store, names.training_export, asset=f"{names.model}/training_export")
    frame = store.read_parquet(export.keys)
    fs = export.feature_set
    previous = registry.champion(names.model)  # resolved once: the comparison and the card name the same one
    sources = resolve_sources(client, spec, names)
    # The leakage check needs no model, and most of it is waiting on Query Service (minutes on an org's data): it
    # runs while the model trains.
    with ThreadPoolExecutor(1, thread_name_prefix="leakage-check") as pool:
        leakage_check = pool.submit(check_leakage, client, store, frame, fs, sources, names,
                                    per_split=gates.leakage_sample_per_split, seed=config.seed)
        model = train_model(frame, ADOBE_FEATURES if export.design == ADOBE_COMPATIBLE else fs.names, config)
        if fs.goal_value:
            model.add_value(frame, seed=config.seed)
        oracle = (compare_with_oracle(store, names.simulation_truth, model, export.test_cutoff, export.horizon_days)
                  if spec.simulated else OracleComparison(float("nan"), float("nan"), None,
                                                          "no simulation: an org's data"))
        leakage = leakage_check.result()
    champion = compare_with_champion(store, previous.model_version if previous else None, model, frame, names.models)
    reference = drift_reference(model, frame, fs, export.test_cutoff)
    simulated = {"oracle_roc_auc": oracle.oracle_roc_auc, "auc_to_oracle": oracle.auc_to_oracle} if spec.simulated \
        else {}
    card = {"design": export.design, **simulated,
            "no_leakage": leakage.passed, "test_cutoff": export.test_cutoff, "horizon_days": export.horizon_days,
            "feature_set": fs.to_json(), "model": names.model}
    files = save_model(store, model, export.keys, reference, root=names.models, extra_card=card)
    verdicts = Verdicts(auc_floor=model.metrics["roc_auc"] >= gates.auc_floor,
                        calibrated=model.metrics["ece"] <= gates.max_ece, no_leakage=leakage.passed,
                        champion_challenger=champion.passed(gates.champion_tolerance))
    y, p = model.holdout[LABEL].to_numpy(), model.holdout["propensity"].to_numpy()
    table = gains(y, p)
    pictures = {"roc": plots.roc_plot(y, p, oracle.oracle), "gains": plots.gains_plot(table),
                "reliability": plots.reliability_plot(reliability(y, p)), "scores": plots.histogram_plot(y, p)}
    batches = sorted(b for ds in sources.dataset_ids for b in client.ingestion.active_batch_ids(ds))
    log = TrainingLog(
        params={**model.params, "trials": config.trials, "prune_trials": config.prune_trials,
                "calibration": config.calibration, "design": export.design,
                "horizon_days": export.horizon_days, "test_cutoff": export.test_cutoff,
                "features": len(model.features)},
        metrics={**{k: float(model.metrics[k]) for k in HEADLINE}, **{k: float(v) for k, v in simulated.items()
                                                                         if k == "oracle_roc_auc"},
                 **{f"value_{k}": float(v) for k, v in model.value_metrics.items()},
                 **{f"random_split_{k}": float(model.random_split_metrics[k]) for k in ("roc_auc", "ece")}},
        tables={"gains_by_decile": table}, plots=pictures,
        tags={**(tags or {}), "aep_assets.model": names.model, "aep_assets.code_version": model.code_version,
              "aep_assets.training_rows": ",".join(export.keys)[:4000],
              "aep.training_dataset_id": export.dataset_id, "aep.source_dataset_ids": ",".join(sources.dataset_ids),
              "aep.source_batch_ids": ",".join(batches)[:7000], "aep.training_export_run_id": export.run_id},
        card={**model.card(), **card})
    promoted = all(getattr(verdicts, g) for g in gates.deciding())
    registered = registry.log_training(names.model, model.booster, model.features, model.version, log,
                                       promote=promoted)
    return ModelRun(model, export, oracle, leakage, champion, previous, files, gates, verdicts, table, pictures,
                    registered, promoted, spec.simulated, spec.goal.kind)
