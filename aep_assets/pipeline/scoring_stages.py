"""The scoring stages of a model instance, each one function with a typed result: the scoring features
(everyone, or only what changed) and the scores with their bands and drift."""

import json
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from ..ml.batch_scoring import JobOutcome, JobRunner, ScoringJob
from ..ml.drift import SCORE, DriftAssessment, DriftPolicy
from ..ml.feature_set import ELIGIBLE, ID, FeatureSet
from ..ml.holdout import HoldoutGroups
from ..ml.plots import score_distribution_plot
from ..ml.score_summary import ScoredRows, ScoreSummary, summary_of, updated_summary
from ..ml.scoring import BandPolicy, Bands, choose_bands, expected_values
from ..storage import Storage
from ..tracking.registry import RegisteredVersion
from . import report
from .exports import Export, export_dataset
from .feature_builds import FeatureBuild, build_feature_dataset, feature_fragments, feature_params
from .handoff import RescorePlan, ScoreRun, ScoringExport
from .model_store import StoredModel, load_model_card, load_model_version
from .rescoring import FULL, INCREMENTAL, load_published, merge_into_published, plan_rescore, scope_predicate
from .sources import resolve_sources
from .spec import ModelSpec, parse_time
from .stage_context import StageContext
from .synthetic import simulation_until


@dataclass(frozen=True)
class ScoringFeatures:
    plan: RescorePlan
    cutoff: datetime
    model_version: str  # the champion the features were built for
    build: FeatureBuild | None = None  # None: nothing new to rescore
    export: Export | None = None
    uri: str = ""  # the export's folder

    def metadata(self) -> dict:
        plan = self.plan
        meta = {"mode": plan.mode, "reason": plan.reason, "cutoff": self.cutoff.isoformat(),
                "model_version": self.model_version, "new_batches": report.Json(plan.new_batches),
                "event_batches": len(plan.event_batches)}
        if self.build is None:
            return {**meta, "dagster/row_count": 0}
        build, export = self.build, self.export
        return {**meta, "dagster/row_count": export.rows, "dataset_id": build.dataset["id"],
                "dagster/table_name": build.table, "query_id": build.query["id"] if build.query else "reused",
                "flow_id": export.flow["id"], "run_id": export.run_id, "dagster/uri": self.uri,
                "sql": report.Sql(build.sql)}


def resolve_champion(stage: StageContext) -> RegisteredVersion:
    """MLflow's champion of the model, or why there is none."""
    champion = stage.registry.champion(stage.names.model)
    if champion is None:
        raise FileNotFoundError(f"Model {stage.names.model!r} has no champion version in MLflow yet: materialise "
                                f"{stage.names.model}/propensity_model; a version becomes champion once every gate "
                                "passes.")
    return champion


def _from_this_storage(stage: StageContext, champion: RegisteredVersion, read):
    """``read(storage, version, root)`` of the champion's folder, or why the folder is not in this storage."""
    names = stage.names
    try:
        return read(stage.store, champion.model_version, names.models)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"MLflow's champion of model {names.model!r} is version {champion.version} (model version "
            f"{champion.model_version}), whose files are not in this storage ({stage.store.uri(names.models)}): the "
            "MLflow store and the storage belong to different deployments. Point MLFLOW_TRACKING_URI and the "
            f"storage (AEP_STORAGE_DIR, or AEP_STORAGE=s3 with AEP_S3_BUCKET) at the same one, or materialise "
            f"{names.model}/propensity_model to train a champion here.") from None


def champion_card(stage: StageContext) -> tuple[str, dict]:
    """The champion's model version and card, for what needs its feature set but not its trees (so no LightGBM,
    which the MLflow resource imports meanwhile on its own thread)."""
    champion = resolve_champion(stage)
    return champion.model_version, _from_this_storage(stage, champion, load_model_card)


def load_champion(stage: StageContext) -> StoredModel:
    """The model that scores: MLflow's champion, resolved once; its booster is that exact MLflow version's and its
    calibration, feature set and holdout come from that version's folder in storage."""
    champion = resolve_champion(stage)
    stored = _from_this_storage(stage, champion, load_model_version)
    return replace(stored, booster=stage.registry.load_booster(champion), registered_version=champion.version)


def present(store: Storage, spec: ModelSpec) -> datetime:
    """Now, or for a simulated source the simulated world's present: its events stop there, and scoring later
    than that would measure every recency from a day with no events (a drift of the clock)."""
    if spec.simulated:
        return simulation_until(store, spec.names.simulation)
    return datetime.now(UTC).replace(second=0, microsecond=0)


def build_scoring_features(stage: StageContext, *, mode: str = "auto") -> ScoringFeatures:
    """The champion's features as of the YAML's scoring.as_of (default: the present), for every profile or, when
    the published scores are still good, only for the profiles with events in new batches; exported to storage
    and handed to propensity_scores with the model version they were built for."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    cutoff = parse_time("scoring.as_of", spec.scoring.as_of) if spec.scoring.as_of else present(store, spec)
    sources = resolve_sources(client, spec, names)
    published = load_published(store, names.scores_pointer)
    event_batches = [b for ds in sources.event_dataset_ids for b in client.ingestion.active_batch_ids(ds)]
    profile_batches = client.ingestion.active_batch_ids(sources.profiles.id) if sources.profiles else []

    def plan_for(model_version: str) -> RescorePlan:
        return plan_rescore(published, model_version=model_version, event_batches=event_batches,
                            profile_batches=profile_batches, cutoff=cutoff, requested=mode)

    def build_for(plan: RescorePlan, fs: FeatureSet) -> FeatureBuild:
        return build_feature_dataset(
            client, name="scoring_features", owner=names.model, table_prefix=names.table_prefix("scoring_features"),
            params=feature_params(client, sources, {"score": cutoff}, 0, scope_predicate(plan)),
            fragments=feature_fragments(fs, sources, scoped=plan.mode == INCREMENTAL),
            input_dataset_ids=sources.dataset_ids)

    # A run of its own (a sensor's) opens the registry for seconds before it can name the champion. The model that
    # published the scores mostly still is the champion, so while the registry opens, that model's feature query
    # starts; it is kept when the champion turns out to be that model (the same plan from the same feature set).
    with ThreadPoolExecutor(1, thread_name_prefix="early-feature-query") as pool:
        early = None if stage.registry_ready() else _early_build(store, names.models, published, plan_for,
                                                                  build_for, pool)
        model_version, card = champion_card(stage)
        plan = plan_for(model_version)
        if early is not None and early.plan == plan:
            build = early.build.result()
        else:
            if early is not None:  # it must end before the champion's own build drops the model's other tables
                early.build.exception()
            if plan.mode == INCREMENTAL and not plan.new_batches:
                ScoringExport(cutoff.isoformat(), plan, model_version).save(store, names.scoring_export)
                return ScoringFeatures(plan, cutoff, model_version)
            build = build_for(plan, FeatureSet.from_json(card["feature_set"]))
    export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("scoring export"),
                            path=names.export_path("scoring"))
    ScoringExport(cutoff.isoformat(), plan, model_version, export.keys, build.dataset["id"]).save(
        store, names.scoring_export)
    return ScoringFeatures(plan, cutoff, model_version, build, export, store.uri(export.folder))


@dataclass(frozen=True)
class _EarlyBuild:
    plan: RescorePlan  # the plan if the published scores' model is still the champion
    build: Future[FeatureBuild]


def _early_build(store: Storage, models: str, published: ScoreRun | None, plan_for: Callable[[str], RescorePlan],
                 build_for: Callable[[RescorePlan, FeatureSet], FeatureBuild],
                 pool: ThreadPoolExecutor) -> _EarlyBuild | None:
    """The feature query of the published scores' model, started on ``pool``; None when that plan needs no query or
    that model's card is not in this storage."""
    if published is None:
        return None
    plan = plan_for(published.model_version)
    if plan.mode == INCREMENTAL and not plan.new_batches:
        return None
    try:
        fs = FeatureSet.from_json(load_model_card(store, published.model_version, models)["feature_set"])
    except FileNotFoundError:
        return None
    return _EarlyBuild(plan, pool.submit(build_for, plan, fs))


@dataclass(frozen=True)
class ScoreFiles:
    """A scoring run's files (storage keys): every score, the features they were scored from, and the rows to
    write back (all of them in a full run)."""

    scores: str
    features: str
    changes: str


@dataclass(frozen=True)
class Scored:
    files: ScoreFiles
    summary: ScoreSummary  # of the merged scores: what AEP will hold
    job: JobOutcome | None  # None when nothing new was scored
    rescored: int  # profiles scored in this run
    converted: int  # published profiles this run withdraws: they have converted since
    already_converted: int  # covered profiles that had converted before the cutoff
    changed_rows: int  # rows to write back
    expires_at: datetime  # the earliest expiry among the scores
    distribution: str  # PNG of the merged scores by band


@dataclass(frozen=True)
class ScoreResult:
    model: StoredModel
    plan: RescorePlan
    scored: Scored
    bands: Bands
    expected: dict[str, float]  # held-out conversion rate per band
    expected_value: dict[str, float]  # a value goal: held-out mean value per band
    uri: str  # the scores' Parquet
    drift: DriftAssessment | None  # None for a model saved without a drift reference
    policy: DriftPolicy
    goal_kind: str
    writes_back: bool
    drift_severity: str  # the YAML's gates.drift.severity; a dry run only warns

    @property
    def verdict(self) -> str:
        return self.drift.verdict if self.drift else "ok"

    def metadata(self, registered_model: str) -> dict:
        model, plan, bands, drift, scored = self.model, self.plan, self.bands, self.drift, self.scored
        summary = scored.summary
        psi = drift.psi if drift else {}
        return {
            "dagster/row_count": summary.rows, "dagster/uri": self.uri, "model_version": model.version,
            "mlflow_model": f"models:/{registered_model}/{model.registered_version}",
            "mlflow_model_version": model.registered_version,
            "mode": plan.mode, "reason": plan.reason, "rescored_profiles": scored.rescored,
            "converted_since_last_score": scored.converted, "changed_rows": scored.changed_rows,
            "already_converted": scored.already_converted,
            **(scored.job.metadata if scored.job else {"engine": "none: nothing new to score"}),
            "mean_propensity": summary.mean_propensity,
            "high_min_percentile": bands.high_min_percentile, "medium_min_percentile": bands.medium_min_percentile,
            **{f"{band}_expected_conversion_rate": rate for band, rate in self.expected.items()},
            **{f"{band}_expected_value": value for band, value in self.expected_value.items()},
            "goal_kind": self.goal_kind,
            "score_psi": psi.get(SCORE, float("nan")),
            "max_feature_psi": max((v for k, v in psi.items() if k != SCORE), default=float("nan")),
            "weighted_feature_psi": drift.weighted_psi if drift else float("nan"),
            "write_back": "enabled" if self.writes_back else "dry run: nothing goes to AEP",
            "bands": report.Table(summary.bands_table()),
            "score_distribution": report.Image("Scores by band", scored.distribution),
            "preview": report.Table(summary.preview()),
        }

    def checks(self) -> list[report.Check]:
        summary, scored = self.scored.summary, self.scored
        valid = report.Check(
            "scores_valid", summary.valid, {
                "rows": summary.rows, "rescored_profiles": scored.rescored, "duplicate_ids": summary.duplicate_ids,
                "out_of_range": summary.out_of_range, "missing_reasons": summary.missing_reasons},
            why=f"{summary.rows} scores for {summary.eligible_rows} eligible profiles, {summary.duplicate_ids} "
                f"duplicate ids, {summary.out_of_range} propensities outside [0, 1], {summary.missing_reasons} rows "
                "without three reason codes",
            fix="rescore in full (scoring_features config mode: full); if it persists, the scoring job's log in this "
                "run says which chunk went wrong")
        return [valid, self._drift_check()]

    def _drift_check(self) -> report.Check:
        drift, policy = self.drift, self.policy
        if drift is None:
            return report.Check("drift", True, {"verdict": "no drift reference: retrain the model to get one"})
        table = pl.DataFrame({"column": list(drift.psi), "psi": list(drift.psi.values())}).with_columns(
            pl.col("psi").round(4))
        figures = {"verdict": drift.verdict, "warn_above": policy.warn, "block_above": policy.block,
                   "score_psi": drift.score_psi, "weighted_feature_psi": drift.weighted_psi,
                   "scored_profiles": drift.rows, "validated_profiles": drift.reference_rows,
                   "broken_features": report.Json(drift.broken), "findings": report.Json(list(drift.reasons)),
                   "psi": report.Table(table, rows=12)}
        blocks = drift.verdict == "block"
        fix = ("look at the broken features' source (a dataset replaced, an event type or identity that stopped "
               "arriving) and fix the data, or retrain the model on the new data; gates.drift in the model's YAML "
               "sets the thresholds") if blocks else "retrain when it persists"
        severity = self.drift_severity if blocks and self.writes_back else "warn"
        return report.Check("drift", drift.verdict == "ok", figures, why="; ".join(drift.reasons), fix=fix,
                            severity=severity)


@dataclass(frozen=True)
class JobFiles:
    """Where one scoring job reads and writes: local paths, or the storage's URIs on a cluster."""

    inputs: list[str]
    output_dir: str
    model_path: str
    value_model_path: str | None


@dataclass(frozen=True)
class ScoringRun:
    """What one run of propensity_scores scores with: the champion, its bands, the exported features, the
    model's control groups and when the scores are stamped and expire."""

    model: StoredModel
    bands: Bands
    export: ScoringExport
    holdout: HoldoutGroups
    scored_at: datetime
    valid_for: timedelta
    reason_method: str
    chunk_rows: int

    @property
    def full(self) -> bool:
        return self.export.plan.mode == FULL

    @property
    def expires_at(self) -> datetime:
        return self.scored_at + self.valid_for

    def job(self, files: JobFiles) -> ScoringJob:
        model = self.model
        return ScoringJob(
            model_path=files.model_path, calibrator=model.calibrator.to_dict(), features=list(model.features),
            inputs=files.inputs, output_dir=files.output_dir, bands=asdict(self.bands), model_version=model.version,
            scored_at=self.scored_at.isoformat(), expires_at=self.expires_at.isoformat(),
            reason_method=self.reason_method, holdout_share=self.holdout.share, holdout_salt=self.holdout.salt,
            drift_reference=(model.drift_reference.at(self.export.cutoff).to_json()
                             if model.drift_reference and self.full else None),
            chunk_rows=self.chunk_rows, value_model_path=files.value_model_path,
            value_scale=model.value.scale if model.value else 1.0)


def run_job(store: Storage, run: ScoringRun, base: str, runner: JobRunner) -> tuple[JobOutcome, ScoreFiles]:
    """The scoring job over the exported features, and the files it wrote (its scores are the changes).

    On this machine the job reads local copies and writes to a scratch folder that is then uploaded; on a
    cluster (``JobRunner.remote``) it reads and writes the storage's own URIs."""
    model_text = run.model.booster.model_to_string()
    value_text = run.model.value.to_text() if run.model.value else None
    keys = run.export.keys
    if runner.remote:
        store.write_bytes(f"{base}/model.txt", model_text.encode())
        if value_text is not None:
            store.write_bytes(f"{base}/value_model.txt", value_text.encode())
        files = JobFiles([store.uri(k) for k in store.parquet_files(keys)], store.uri(base),
                         store.uri(f"{base}/model.txt"), store.uri(f"{base}/value_model.txt") if value_text else None)
        scores, features = f"{base}/scores/", f"{base}/features/"
        return runner(run.job(files)), ScoreFiles(scores, features, scores)
    with tempfile.TemporaryDirectory(prefix="aep-scoring-") as scratch:
        folder = Path(scratch)
        (folder / "inputs").mkdir()
        inputs = [str(p) for p in store.local_copies(keys, folder / "inputs")]
        (folder / "model.txt").write_text(model_text)
        if value_text is not None:
            (folder / "value_model.txt").write_text(value_text)
        outcome = runner(run.job(JobFiles(inputs, str(folder / "out"), str(folder / "model.txt"),
                                          str(folder / "value_model.txt") if value_text is not None else None)))
        scores, features = (publish_output(store, folder / "out", base, name) for name in ("scores", "features"))
        return outcome, ScoreFiles(scores, features, scores)


def publish_output(store: Storage, out: Path, base: str, name: str) -> str:
    """Upload the job's ``name`` output (scores or features): one file, or a folder of Spark's parts."""
    if (out / f"{name}.parquet").is_file():
        store.upload(f"{base}/{name}.parquet", out / f"{name}.parquet")
        return f"{base}/{name}.parquet"
    for part in sorted((out / name).glob("*.parquet")):
        if not part.name.startswith("."):
            store.upload(f"{base}/{name}/{part.name}", part)
    return f"{base}/{name}/"


def score_profiles(stage: StageContext, band_policy: BandPolicy, runner: JobRunner, *,
                   reason_method: str = "shap") -> ScoreResult:
    """Score what scoring_features exported for the champion with the scoring job (``runner``), merge an
    incremental run into the published scores, write the files, and keep the run as the candidate that
    aep_score_dataset writes back. Features exported for another model version are refused."""
    store, spec, names = stage.store, stage.spec, stage.names
    model = load_champion(stage)
    export = ScoringExport.load(store, names.scoring_export, asset=f"{names.model}/scoring_features")
    export.require_model(model.version)
    bands, expected = choose_bands(band_policy, model.holdout)
    values = expected_values(bands, model.holdout)
    plan = export.plan
    published = load_published(store, names.scores_pointer)
    if plan.mode != FULL and published is None:
        raise FileNotFoundError("An incremental rescore needs published scores; run a full rescore first.")
    run = ScoringRun(model, bands, export, spec.holdout_groups, datetime.now(UTC).replace(microsecond=0),
                     timedelta(days=spec.scoring.valid_days), reason_method, spec.scoring.chunk_rows)
    base = f"{names.scores}/{model.version}/{run.scored_at:%Y%m%dT%H%M%S}"
    if not export.keys:
        scored = _standing(store, published, model, base, export.cutoff)
    elif run.full:
        job, files = run_job(store, run, base, runner)
        scored = _full(job, files, run.expires_at)
    else:
        job, files = run_job(store, run, f"{base}/rescored", runner)
        scored = _incremental(store, run, published, job, files, base)
    drift_policy = DriftPolicy(spec.gates.drift.warn, spec.gates.drift.block, spec.gates.drift.min_population_ratio)
    drift = scored.summary.assess(model.drift_reference.at(export.cutoff) if model.drift_reference else None,
                                  drift_policy)
    files = scored.files
    summary_key = f"{base}/summary.json"  # what the next incremental rescore updates instead of counting every score
    store.write_bytes(summary_key, json.dumps(scored.summary.to_json()).encode())
    candidate = ScoreRun(key=files.scores, features_key=files.features, changes_key=files.changes,
                         model_version=model.version, bands=bands, expected_conversion_rate=expected,
                         horizon_days=model.card.get("horizon_days"), cutoff=export.cutoff,
                         scored_at=run.scored_at.isoformat(), expires_at=scored.expires_at.isoformat(), mode=plan.mode,
                         reason=plan.reason, event_batches=plan.event_batches, profile_batches=plan.profile_batches,
                         drift=drift.verdict if drift else "ok",
                         calibration_rows=int(model.card.get("rows", {}).get("calibration", 0)), expected_value=values,
                         summary_key=summary_key)
    candidate.save(store, names.scores_candidate)
    if not spec.write_back.enabled:  # a dry run's forecasts are still checked once their window closes
        candidate.save(store, names.score_run(candidate.scored_at))
    return ScoreResult(model, plan, scored, bands, expected, values, store.uri(files.scores), drift, drift_policy,
                       spec.goal.kind, spec.write_back.enabled, spec.gates.drift.severity)


def _standing(store: Storage, published: ScoreRun, model: StoredModel, base: str, cutoff: str) -> Scored:
    """Nothing new to score: the published scores stand, and nothing is written back."""
    scores = store.read_parquet([published.key])
    changes = f"{base}/changes.parquet"
    store.write_parquet(changes, scores.head(0))
    rows = ScoredRows(scores, store.read_parquet([published.features_key]))
    nothing = ScoredRows(scores.head(0), rows.features.head(0))
    summary = summarize(store, published, rows, nothing, nothing, model, cutoff)
    return Scored(ScoreFiles(published.key, published.features_key, changes), summary, None, 0, 0, 0, 0,
                  scores["expires_at"].min(), score_distribution_plot(summary.histogram))


def _full(job: JobOutcome, files: ScoreFiles, expires_at: datetime) -> Scored:
    """Every profile scored by the job: its files are the scores, and every score is a change to write back."""
    s = job.summary
    return Scored(files, s, job, s.rows, 0, s.ineligible_rows, s.rows, expires_at, score_distribution_plot(s.histogram))


def _incremental(store: Storage, run: ScoringRun, published: ScoreRun, job: JobOutcome, job_files: ScoreFiles,
                 base: str) -> Scored:
    """The job's rescored profiles merged into the published scores (a few profiles: in memory)."""
    rescored = store.read_parquet([job_files.scores])
    covered = store.read_parquet(run.export.keys).select(ID, ELIGIBLE)
    merged, converted = merge_into_published(
        rescored, store.read_parquet([job_files.features]), covered.filter(pl.col(ELIGIBLE) == 0)[ID], published,
        store, run.bands, run.holdout, model_version=run.model.version, scored_at=run.scored_at,
        expires_at=run.expires_at)
    scores, changes = merged.scores, merged.changes
    files = ScoreFiles(*(f"{base}/{name}.parquet" for name in ("scores", "features", "changes")))
    # The files are written while the summary is counted and its plot drawn: Parquet's encoders and the writes
    # release the GIL.
    with ThreadPoolExecutor(3, thread_name_prefix="merged-scores") as pool:
        written = [pool.submit(store.write_parquet, key, frame)
                   for key, frame in ((files.scores, scores), (files.features, merged.features),
                                      (files.changes, changes))]
        summary = summarize(store, published, merged.rows, merged.replaced, merged.added, run.model,
                            run.export.cutoff)
        distribution = score_distribution_plot(summary.histogram)
        for write in written:
            write.result()
    return Scored(files, summary, job, rescored.height, converted, covered.height - rescored.height, changes.height,
                  scores["expires_at"].min(), distribution)


def summarize(store: Storage, published: ScoreRun, merged: ScoredRows, replaced: ScoredRows, added: ScoredRows,
              model: StoredModel, cutoff: str) -> ScoreSummary:
    """The summary of the published scores with ``replaced`` rows taken out and ``added`` ones put in (``merged``):
    from the published scores' own summary and the changed rows, or, for scores published without a summary,
    counted over every row."""
    reference = model.drift_reference.at(cutoff) if model.drift_reference else None
    before = _published_summary(store, published)
    if before is None:
        return summary_of(merged, reference)
    return updated_summary(before, replaced, added, merged, reference,
                           same_cutoff=datetime.fromisoformat(published.cutoff) == datetime.fromisoformat(cutoff))


def _published_summary(store: Storage, published: ScoreRun) -> ScoreSummary | None:
    """The published scores' summary; None when they were published without one, or with one this version of the
    project does not read (then every score is counted)."""
    if not (published.summary_key and store.exists(published.summary_key)):
        return None
    try:
        return ScoreSummary.from_json(json.loads(store.read_bytes(published.summary_key)))
    except (TypeError, ValueError):
        return None
