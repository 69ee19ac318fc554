"""The write-back stages of a model instance, each one function with a typed result: the scores into the
model's score dataset, the band audiences, and their activation."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from ..ml.feature_set import ID, PREDICTED_VALUE
from .audiences import BANDS, Activation, Audiences, activate_audiences, build_audiences
from .handoff import ActivationRun, ScoreRun
from .ingest import append_dataset_rows, replace_dataset_rows
from .ownership import ensure_owned_dataset
from .rescoring import FULL
from .schemas import require_schema
from .stage_context import StageContext


def score_records(scores: pl.DataFrame, tenant: str) -> pa.Table:
    """The score rows in the score schema's tenant fields."""
    fields = scores.select(
        pl.col(ID).alias("userid"), pl.col("propensity"), pl.col("score").alias("propensityScore"),
        pl.col("percentile").alias("propensityPercentile"), pl.col("decile").alias("propensityDecile"),
        pl.col("band").alias("propensityBand"), pl.col("group").alias("propensityGroup"),
        pl.col("model_version").alias("propensityModelVersion"),
        pl.col("scored_at").alias("propensityScoredAt"), pl.col("expires_at").alias("propensityExpiresAt"),
        *[pl.col(f"reason_{k}").alias(f"propensityReason{k}") for k in (1, 2, 3)],
        *([pl.col(PREDICTED_VALUE).alias("predictedValue")] if PREDICTED_VALUE in scores.columns else []))
    return pa.table({f"_{tenant}": pa.StructArray.from_arrays(
        [fields[c].to_arrow() for c in fields.columns], names=fields.columns)})


@dataclass(frozen=True)
class PublishedScores:
    dataset: dict
    candidate: ScoreRun
    rows: int  # rows this run had to write
    batch: dict | None  # None: nothing changed, AEP already holds these scores
    written: int

    @property
    def succeeded(self) -> bool:
        return self.batch is None or (self.batch["status"] == "success" and self.written == self.rows)


def publish_scores(stage: StageContext) -> PublishedScores:
    """The candidate scores into the model's profile-enabled score dataset (a full rescore replays the
    dataset's batches, an incremental one adds a batch of the changed rows); once AEP holds them they are
    the published scores. A dataset of that name the model did not create is refused."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    candidate = ScoreRun.load(store, names.scores_candidate, asset=f"{names.model}/propensity_scores")
    full = candidate.mode == FULL
    rows = store.read_parquet([candidate.key if full else candidate.changes_key])
    ds = ensure_owned_dataset(client, names.score_dataset, require_schema(client, "score", spec.events.namespace)[
        "$id"], names.model, profile=True, description=f"Propensity scores of model {names.model}, by aep_assets.")
    if rows.height == 0:  # nothing changed: AEP already holds these scores
        candidate.save(store, names.scores_pointer)
        return PublishedScores(ds, candidate, 0, None, 0)
    load = replace_dataset_rows if full else append_dataset_rows
    batch = load(client, ds, [score_records(rows, client.schemas.tenant_id())], owner=names.model)
    written = int(batch["metrics"].get("outputRecordCount", batch["metrics"].get("recordsWritten", 0)))
    published = PublishedScores(ds, candidate, rows.height, batch, written)
    if published.succeeded:  # these scores are now the ones AEP holds
        held = ScoreRun.from_json({**candidate.to_json(), "batch_id": batch["id"]})
        held.save(store, names.scores_pointer)
        held.save(store, names.score_run(held.scored_at))
    return published


@dataclass(frozen=True)
class AudienceRefresh:
    audiences: Audiences
    published: ScoreRun
    history: list[dict]  # every evaluation so far: {"scored_at", "evaluated_at", <band>: size}, oldest first


def refresh_audiences(stage: StageContext) -> AudienceRefresh:
    """The model's band audiences over the published scores (and their control groups), evaluated by a
    segment job; their sizes join the history kept for plotting them across runs."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    published = ScoreRun.load(store, names.scores_pointer, asset=f"{names.model}/aep_score_dataset")
    audiences = build_audiences(client, names, published.bands, holdout_share=spec.holdout.share)
    key = names.audience_sizes
    history = json.loads(store.read_bytes(key)) if store.exists(key) else []
    history.append({"scored_at": published.scored_at, "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    **{band: audiences.size(band) for band in BANDS}})
    store.write_bytes(key, json.dumps(history[-200:]).encode())
    return AudienceRefresh(audiences, published, history[-200:])


def activate_model_audiences(stage: StageContext) -> tuple[Activation, dict[str, dict]]:
    """Each band audience's members (never its control group) written to storage by the model's file
    destination flow; the activation is kept so outcome tracking knows who was treated."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    tenant = client.schemas.tenant_id()
    segments = {band: client.segmentation.find_segment(names.audience(band)) for band in BANDS}
    if any(s is None for s in segments.values()):
        raise LookupError(f"The audiences do not exist in AEP yet; materialise {names.model}/propensity_audiences "
                          "first.")
    done = activate_audiences(client, store, names.flow("audience activation"), list(segments.values()),
                              [f"_{tenant}.propensity", f"_{tenant}.propensityBand"],
                              path=names.export_path("audiences"))
    published = ScoreRun.load(store, names.scores_pointer, asset=f"{names.model}/aep_score_dataset")
    activation = ActivationRun(published.scored_at, published.cutoff, datetime.now(UTC).isoformat(timespec="seconds"),
                               {band: done.files[s["id"]] for band, s in segments.items()}, spec.holdout.share)
    activation.save(store, names.activation_pointer)
    activation.save(store, names.activation_run(published.scored_at))
    return done, segments
