"""The write-back stages of a model instance, each one function with a typed result: the scores into the
model's score dataset, the band audiences, and their activation."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from ..aep.catalog import Catalog
from ..ml.feature_set import ID, PREDICTED_VALUE
from ..ml.holdout import size_control_group
from ..ml.plots import audience_sizes_plot
from . import report
from .audiences import BANDS, Activation, Audiences, activate_audiences, build_audiences
from .handoff import ActivationRun, ScoreRun
from .ingest import append_dataset_rows, replace_dataset_rows
from .ownership import ensure_owned_dataset
from .rescoring import FULL
from .schemas import require_schema
from .spec import Holdout
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

    def metadata(self) -> dict:
        batch = self.batch
        return {"dataset_id": self.dataset["id"], "dagster/table_name": Catalog.table_name(self.dataset),
                "mode": self.candidate.mode, "model_version": self.candidate.model_version,
                "profiles_written": self.rows,
                **({"dagster/row_count": 0, "batch_id": "none"} if batch is None else
                   {"batch_id": batch["id"], "batch_status": batch["status"], "dagster/row_count": self.written})}

    def checks(self) -> list[report.Check]:
        status = self.batch["status"] if self.batch else "none"
        return [report.Check("batch_succeeded", self.succeeded, {"written": self.written, "rows": self.rows},
                             why=f"the score batch ended {status} with {self.written} of {self.rows} rows written",
                             fix="the batch's errors in AEP (Catalog: the batch's failed files) say which rows; "
                                 "materialise aep_score_dataset again once fixed")]


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
    holdout: Holdout

    def metadata(self) -> dict:
        audiences, published = self.audiences, self.published
        expected = published.expected_conversion_rate
        return {
            **self._holdout_metadata(),
            **{f"{band}_size": audiences.size(band) for band in BANDS},
            **{f"{band}_expected_conversion_rate": float(expected.get(band, float("nan"))) for band in BANDS},
            "expected_conversion_horizon_days": published.horizon_days or 0,
            "segments": report.Json({band: {"id": s["id"], "name": s["name"], "pql": s["expression"]["value"],
                                            "change": audiences.changes[band]}
                                     for band, s in audiences.segments.items()}),
            "segment_job_id": audiences.job["id"],
            "sizes_across_runs": report.Image("Audience sizes", audience_sizes_plot(self.history)),
            "total_profiles": int(audiences.job["metrics"].get("totalProfiles", 0)),
        }

    def _holdout_metadata(self) -> dict:
        """Per band: the control group's size, the uplift it can detect, and the share the target uplift needs."""
        h, expected = self.holdout, self.published.expected_conversion_rate
        if h.share <= 0:
            return {"holdout": "none: every member is activated (set holdout.share to measure uplift)"}
        meta = {"holdout_share": h.share, "target_uplift": h.target_uplift}
        for band in BANDS:
            control = self.audiences.control_size(band)
            sizing = size_control_group(self.audiences.size(band) + control, float(expected.get(band, float("nan"))),
                                        h.share, h.target_uplift, power=h.power, alpha=h.alpha)
            meta.update({f"{band}_control_size": control, f"{band}_detectable_uplift": sizing.detectable_uplift,
                         f"{band}_control_share_needed": sizing.share_needed if sizing.share_needed is not None
                         else float("nan")})
        return meta


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
    return AudienceRefresh(audiences, published, history[-200:], spec.holdout)


@dataclass(frozen=True)
class ActivatedAudiences:
    activation: Activation
    segments: dict[str, dict]  # band -> its segment
    uris: dict[str, str]  # band -> its member file

    def metadata(self) -> dict:
        done, segments = self.activation, self.segments
        return {"flow_id": done.flow["id"],
                "run_ids": report.Json({s["name"]: done.runs[s["id"]]["id"] for s in segments.values()}),
                "files": report.Json([done.files[s["id"]] for s in segments.values()]),
                **{f"{band}_members": done.members(s["id"]) for band, s in segments.items()},
                **{f"{band}_uri": uri for band, uri in self.uris.items()}}


def activate_model_audiences(stage: StageContext) -> ActivatedAudiences:
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
    return ActivatedAudiences(done, segments, {band: store.uri(done.files[s["id"]]) for band, s in segments.items()})
