"""The scoring stages of a model instance, each one function with a typed result: the scoring features
(everyone, or only what changed) and the scores with their bands and drift."""

import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from ..aep import AEPClient
from ..ml.batch_scoring import JobOutcome, JobRunner, ScoringJob
from ..ml.drift import DriftAssessment, DriftPolicy
from ..ml.feature_set import ELIGIBLE, ID, FeatureSet
from ..ml.score_summary import ScoreSummary
from ..ml.scoring import BandPolicy, Bands, choose_bands, expected_values
from ..storage import Storage
from ..tracking.registry import ModelRegistry
from .audiences import holdout_groups
from .exports import Export, export_dataset
from .features import FeatureBuild, build_feature_dataset, feature_fragments, feature_params, resolve_sources
from .handoff import ScoreRun, ScoringExport
from .model_store import StoredModel, load_model_version
from .naming import Names
from .rescoring import (
    FULL,
    INCREMENTAL,
    RescorePlan,
    load_published,
    merge_into_published,
    plan_rescore,
    scope_predicate,
)
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
    scored: "Scored"
    bands: Bands
    expected: dict[str, float]  # held-out conversion rate per band
    expected_value: dict[str, float]  # a value goal: held-out mean value per band
    uri: str  # the scores' Parquet
    drift: DriftAssessment | None  # None for a model saved without a drift reference
    policy: DriftPolicy

    @property
    def verdict(self) -> str:
        return self.drift.verdict if self.drift else "ok"


def scoring_job(model: StoredModel, bands: Bands, inputs: list[str], output_dir: str, model_path: str,
                value_model_path: str | None, *, spec: ModelSpec, names: Names, scored_at: datetime,
                valid_for: timedelta, reason_method: str, full: bool, cutoff: str) -> ScoringJob:
    return ScoringJob(
        model_path=model_path, calibrator=model.calibrator.to_dict(), features=list(model.features), inputs=inputs,
        output_dir=output_dir, bands=bands.__dict__, model_version=model.version, scored_at=scored_at.isoformat(),
        expires_at=(scored_at + valid_for).isoformat(), reason_method=reason_method,
        holdout_share=spec.holdout.share if full else 0.0, holdout_salt=spec.holdout.salt or names.model,
        drift_reference=model.drift_reference.at(cutoff).to_json() if model.drift_reference and full else None,
        chunk_rows=spec.scoring.chunk_rows, value_model_path=value_model_path,
        value_scale=model.value.scale if model.value else 1.0)


def run_job(store: Storage, export: ScoringExport, base: str, model_text: str, value_text: str | None,
            run: JobRunner, make_job) -> tuple[JobOutcome, dict]:
    """The scoring job over the exported features, and the storage keys of what it wrote (scores, features).

    On this machine the job reads local copies and writes to a scratch folder that is then uploaded; on a
    cluster (``JobRunner.remote``) it reads and writes the storage's own URIs."""
    if run.remote:
        store.write_bytes(f"{base}/model.txt", model_text.encode())
        if value_text is not None:
            store.write_bytes(f"{base}/value_model.txt", value_text.encode())
        job = make_job([store.uri(k) for k in store.parquet_files(export.keys)], store.uri(base),
                       store.uri(f"{base}/model.txt"), store.uri(f"{base}/value_model.txt") if value_text else None)
        return run(job), {name: f"{base}/{name}/" for name in ("scores", "features")}
    with tempfile.TemporaryDirectory(prefix="aep-scoring-") as scratch:
        folder = Path(scratch)
        (folder / "inputs").mkdir()
        inputs = [str(p) for p in store.local_copies(export.keys, folder / "inputs")]
        (folder / "model.txt").write_text(model_text)
        if value_text is not None:
            (folder / "value_model.txt").write_text(value_text)
        outcome = run(make_job(inputs, str(folder / "out"), str(folder / "model.txt"),
                               str(folder / "value_model.txt") if value_text is not None else None))
        return outcome, publish_outputs(store, folder / "out", base)


def publish_outputs(store: Storage, out: Path, base: str) -> dict[str, str]:
    """Upload the job's ``scores`` and ``features``: one file each, or a folder of Spark's parts."""
    keys = {}
    for name in ("scores", "features"):
        if (out / f"{name}.parquet").is_file():
            keys[name] = f"{base}/{name}.parquet"
            store.upload(keys[name], out / f"{name}.parquet")
        else:
            keys[name] = f"{base}/{name}/"
            for part in sorted((out / name).glob("*.parquet")):
                if not part.name.startswith("."):
                    store.upload(f"{base}/{name}/{part.name}", part)
    return keys


def score_profiles(store: Storage, registry: ModelRegistry, spec: ModelSpec, names: Names, band_policy: BandPolicy,
                   drift_policy: DriftPolicy, run: JobRunner, *, valid_days: int, reason_method: str = "shap"
                   ) -> ScoreResult:
    """Score what scoring_features exported with the scoring job (``run``), merge an incremental run into the
    published scores, write the files, and keep the run as the candidate that aep_score_dataset writes back."""
    model = load_champion(store, registry, names)
    bands, expected = choose_bands(band_policy, model.holdout)
    values = expected_values(bands, model.holdout)
    export = ScoringExport.load(store, names.scoring_export, asset=f"{names.model}/scoring_features")
    plan = RescorePlan(**export.plan)
    published = load_published(store, names.scores_pointer)
    if plan.mode != FULL and published is None:
        raise FileNotFoundError("An incremental rescore needs published scores; run a full rescore first.")
    scored_at = datetime.now(UTC).replace(microsecond=0)
    valid_for = timedelta(days=valid_days)
    base = f"{names.scores}/{model.version}/{scored_at:%Y%m%dT%H%M%S}"
    if not export.keys:
        scored = _standing(store, published, model, base, export.cutoff)
    else:
        def make_job(inputs: list[str], output_dir: str, model_path: str, value_path: str | None) -> ScoringJob:
            return scoring_job(model, bands, inputs, output_dir, model_path, value_path, spec=spec, names=names,
                               scored_at=scored_at, valid_for=valid_for, reason_method=reason_method,
                               full=plan.mode == FULL, cutoff=export.cutoff)

        folder = base if plan.mode == FULL else f"{base}/rescored"
        job, keys = run_job(store, export, folder, model.booster.model_to_string(),
                            model.value.to_text() if model.value else None, run, make_job)
        scored = (_full(job, keys, scored_at + valid_for) if plan.mode == FULL else
                  _incremental(store, spec, names, model, bands, export, published, job, keys, base,
                               scored_at=scored_at, expires_at=scored_at + valid_for))
    summary, keys = scored.summary, scored.keys
    drift = summary.assess(model.drift_reference.at(export.cutoff) if model.drift_reference else None,
                           drift_policy)
    candidate = ScoreRun(key=keys["scores"], features_key=keys["features"], changes_key=keys["changes"],
             model_version=model.version, bands=bands.__dict__, expected_conversion_rate=expected,
             horizon_days=model.card.get("horizon_days"), cutoff=export.cutoff, scored_at=scored_at.isoformat(),
             expires_at=scored.expires_at.isoformat(), mode=plan.mode, reason=plan.reason,
             event_batches=plan.event_batches, profile_batches=plan.profile_batches,
             drift=drift.verdict if drift else "ok",
             calibration_rows=int(model.card.get("rows", {}).get("calibration", 0)), expected_value=values)
    candidate.save(store, names.scores_candidate)
    if not spec.write_back.enabled:  # a dry run's forecasts are still checked once their window closes
        candidate.save(store, names.score_run(candidate.scored_at))
    return ScoreResult(model, plan, scored, bands, expected, values, store.uri(keys["scores"]), drift, drift_policy)


@dataclass(frozen=True)
class Scored:
    keys: dict[str, str]  # scores, features, changes
    summary: ScoreSummary  # of the merged scores: what AEP will hold
    job: JobOutcome | None  # None when nothing new was scored
    rescored: int  # profiles scored in this run
    converted: int  # published profiles this run withdraws: they have converted since
    already_converted: int  # covered profiles that had converted before the cutoff
    changed_rows: int  # rows to write back
    expires_at: datetime  # the earliest expiry among the scores


def _standing(store: Storage, published: ScoreRun, model: StoredModel, base: str, cutoff: str) -> Scored:
    """Nothing new to score: the published scores stand, and nothing is written back."""
    scores = store.read_parquet([published.key])
    changes = f"{base}/changes.parquet"
    store.write_parquet(changes, scores.head(0))
    return Scored({"scores": published.key, "features": published.features_key, "changes": changes},
                  summarize(scores, store.read_parquet([published.features_key]), model, cutoff), None, 0, 0, 0, 0,
                  scores["expires_at"].min())


def _full(job: JobOutcome, keys: dict[str, str], expires_at: datetime) -> Scored:
    """Every profile scored by the job: its files are the scores, and every score is a change to write back."""
    s = job.summary
    return Scored({**keys, "changes": keys["scores"]}, s, job, s.rows, 0, s.ineligible_rows, s.rows, expires_at)


def _incremental(store: Storage, spec: ModelSpec, names: Names, model: StoredModel, bands: Bands,
                 export: ScoringExport, published: ScoreRun, job: JobOutcome, job_keys: dict[str, str], base: str,
                 *, scored_at: datetime, expires_at: datetime) -> Scored:
    """The job's rescored profiles merged into the published scores (a few profiles: in memory)."""
    rescored = store.read_parquet([job_keys["scores"]])
    covered = store.read_parquet(export.keys).select(ID, ELIGIBLE)
    merged, converted = merge_into_published(
        rescored, store.read_parquet([job_keys["features"]]), covered.filter(pl.col(ELIGIBLE) == 0)[ID], published,
        store, bands, model_version=model.version, scored_at=scored_at, expires_at=expires_at)
    scores = holdout_groups(merged.scores, spec.holdout, names.model)
    # The changed rows are scores too (or converted markers, in no audience): one hash per identity.
    changes = merged.changes.drop("group", strict=False).join(scores.select(ID, "group"), on=ID, how="left")
    keys = {name: f"{base}/{name}.parquet" for name in ("scores", "features", "changes")}
    store.write_parquet(keys["scores"], scores)
    store.write_parquet(keys["features"], merged.features)
    store.write_parquet(keys["changes"], changes)
    return Scored(keys, summarize(scores, merged.features, model, export.cutoff), job, rescored.height, converted,
                  covered.height - rescored.height, changes.height, scores["expires_at"].min())


def summarize(scores: pl.DataFrame, features: pl.DataFrame, model: StoredModel, cutoff: str) -> ScoreSummary:
    """The summary of scores held in memory (an incremental merge, or scores that stand)."""
    summary = ScoreSummary()
    live = scores.filter(pl.col("propensity").is_not_null())
    summary.add_scores(live)
    reference = model.drift_reference.at(cutoff) if model.drift_reference else None
    summary.add_drift(reference, features, live["propensity"].to_numpy())
    summary.duplicate_ids = scores.height - scores[ID].n_unique()
    return summary
