"""The scoring stages of a model instance, each one function with a typed result: the scoring features
(everyone, or only what changed) and the scores with their bands and drift."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from ..aep import AEPClient
from ..ml.drift import DriftPolicy
from ..ml.feature_set import ID, FeatureSet
from ..ml.scoring import BandPolicy, Bands, choose_bands
from ..storage import Storage
from ..tracking.registry import ModelRegistry
from .audiences import holdout_groups
from .exports import Export, export_dataset
from .features import FeatureBuild, build_feature_dataset, feature_fragments, feature_params, resolve_sources
from .handoff import ScoreRun, ScoringExport
from .model_store import StoredModel, load_model_version
from .naming import Names
from .rescoring import INCREMENTAL, Merged, Rescore, RescorePlan, load_published, plan_rescore, rescore, scope_predicate
from .spec import ModelSpec
from .synthetic import simulation_until


@dataclass(frozen=True)
class ScoringFeatures:
    plan: RescorePlan
    cutoff: datetime
    build: FeatureBuild | None = None  # None: nothing new to rescore
    export: Export | None = None


def load_champion(store: Storage, registry: ModelRegistry, names: Names) -> StoredModel:
    """The model that scores: MLflow's ``models:/<name>@champion``, with its calibration, feature set and holdout
    from the version's folder in storage."""
    champion = registry.champion(names.model)
    if champion is None:
        raise FileNotFoundError(f"Model {names.model!r} has no champion version in MLflow yet: materialise "
                                f"{names.model}/propensity_model; a version becomes champion once every gate passes.")
    stored = load_model_version(store, champion.model_version, names.models)
    return replace(stored, booster=registry.load_champion(names.model), registered_version=champion.version)


def present(store: Storage, spec: ModelSpec, names: Names) -> datetime:
    """Now, or for a simulated source the simulated world's present: its events stop there, and scoring later
    than that would measure every recency from a day with no events (a drift of the clock)."""
    if spec.simulated:
        return simulation_until(store, names.simulation)
    return datetime.now(UTC).replace(second=0, microsecond=0)


def build_scoring_features(client: AEPClient, store: Storage, registry: ModelRegistry, spec: ModelSpec,
                           names: Names, cutoff: datetime | None, *, mode: str = "auto") -> ScoringFeatures:
    """The current model's features as of ``cutoff`` (default: the present), for every profile or, when the
    published scores are still good, only for the profiles with events in new batches; exported to storage."""
    cutoff = cutoff or present(store, spec, names)
    model = load_champion(store, registry, names)
    fs = FeatureSet.from_json(model.card["feature_set"])
    sources = resolve_sources(client, spec, names)
    plan = plan_rescore(
        load_published(store, names.scores_pointer), model_version=model.version,
        event_batches=[b for ds in sources.events for b in client.ingestion.active_batch_ids(ds["id"])],
        profile_batches=client.ingestion.active_batch_ids(sources.profiles["id"]) if sources.profiles else [],
        cutoff=cutoff, requested=mode)
    if plan.mode == INCREMENTAL and not plan.new_batches:
        ScoringExport(cutoff.isoformat(), plan.to_json()).save(store, names.scoring_export)
        return ScoringFeatures(plan, cutoff)
    build = build_feature_dataset(
        client, name="scoring_features", owner=names.model, table_prefix=names.table_prefix("scoring_features"),
        params=feature_params(client, sources, {"score": cutoff}, 0, scope_predicate(plan)),
        fragments=feature_fragments(fs, sources), input_dataset_ids=sources.dataset_ids)
    export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("scoring export"),
                            path=names.export_path("scoring"))
    ScoringExport(cutoff.isoformat(), plan.to_json(), export.keys, build.dataset["id"]).save(
        store, names.scoring_export)
    return ScoringFeatures(plan, cutoff, build, export)


@dataclass(frozen=True)
class ScoreResult:
    model: StoredModel
    plan: RescorePlan
    run: Rescore
    bands: Bands
    expected: dict[str, float]  # held-out conversion rate per band
    uri: str  # the scores Parquet file
    drift: dict[str, float]  # PSI per column, largest first
    policy: DriftPolicy
    verdict: str  # ok | warn | block


def score_profiles(store: Storage, registry: ModelRegistry, spec: ModelSpec, names: Names, band_policy: BandPolicy,
                   drift_policy: DriftPolicy, *, valid_days: int, reason_method: str = "shap") -> ScoreResult:
    """Score what scoring_features exported, merge it into the published scores, write the files, and keep
    the run as the candidate that aep_score_dataset writes back."""
    model = load_champion(store, registry, names)
    bands, expected = choose_bands(band_policy, model.holdout)
    export = ScoringExport.load(store, names.scoring_export, asset=f"{names.model}/scoring_features")
    plan = RescorePlan(**export.plan)
    features = store.read_parquet(export.keys) if export.keys else None
    scored_at = datetime.now(UTC).replace(microsecond=0)
    run = rescore(model, plan, features, load_published(store, names.scores_pointer), store, bands,
                  scored_at=scored_at, valid_for=timedelta(days=valid_days), reason_method=reason_method)
    merged = run.merged
    scores = holdout_groups(merged.scores, spec.holdout, names.model)
    # The changed rows are scores too (or converted markers, in no audience): one hash per identity.
    changes = merged.changes.drop("group", strict=False).join(scores.select(ID, "group"), on=ID, how="left")
    run = replace(run, merged=Merged(scores, merged.features, changes))
    base = f"{names.scores}/{model.version}/{scored_at:%Y%m%dT%H%M%S}"
    keys = {name: f"{base}/{name}.parquet" for name in ("scores", "features", "changes")}
    uri = store.write_parquet(keys["scores"], run.merged.scores)
    store.write_parquet(keys["features"], run.merged.features)
    store.write_parquet(keys["changes"], run.merged.changes)
    drift = model.drift_reference.psi(run.merged.features, run.merged.scores["propensity"].to_numpy()) \
        if model.drift_reference else {}
    verdict = drift_policy.verdict(drift)
    candidate = ScoreRun(key=keys["scores"], features_key=keys["features"], changes_key=keys["changes"],
             model_version=model.version, bands=bands.__dict__, expected_conversion_rate=expected,
             horizon_days=model.card.get("horizon_days"), cutoff=export.cutoff, scored_at=scored_at.isoformat(),
             expires_at=run.expires_at.isoformat(), mode=plan.mode, reason=plan.reason,
             event_batches=plan.event_batches, profile_batches=plan.profile_batches,
             drift=verdict, calibration_rows=int(model.card.get("rows", {}).get("calibration", 0)))
    candidate.save(store, names.scores_candidate)
    if not spec.write_back.enabled:  # a dry run's forecasts are still checked once their window closes
        candidate.save(store, names.score_run(candidate.scored_at))
    return ScoreResult(model, plan, run, bands, expected, uri, drift, drift_policy, verdict)
