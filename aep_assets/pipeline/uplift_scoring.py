"""The uplift model at work: the published run's profiles scored with it and written back next to their
propensity (the model's own uplift dataset), and the persuadable audience with its control group, activated."""

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from ..ml.feature_set import ID
from ..ml.holdout import CONTROL, TREATMENT
from ..ml.uplift import XLearner
from .audiences import activate_audiences
from .handoff import ScoreRun, UpliftActivation, UpliftModelRun, UpliftScoreRun
from .ingest import replace_dataset_rows
from .ownership import ensure_owned_dataset
from .schemas import require_schema
from .stage_context import StageContext

PERSUADABLE, OTHER, NONE = "persuadable", "other", "none"


@dataclass(frozen=True)
class UpliftScores:
    run: UpliftScoreRun
    scores: pl.DataFrame  # identity, uplift, uplift_band, group

    def metadata(self) -> dict:
        r = self.run
        bands = self.scores.group_by("uplift_band").len().sort("uplift_band")
        return {"scored_at": r.scored_at, "model_version": r.model_version or "none", "gated": r.gated,
                "persuadable": r.persuadable, "persuadable_threshold": r.threshold,
                "dagster/row_count": self.scores.height, "batch_id": r.batch_id or "none",
                **{f"{b}_profiles": n for b, n in bands.iter_rows()},
                **({"mean_predicted_uplift": float(self.scores["uplift"].mean())} if r.gated else {})}


def predict_uplift(stage: StageContext, published: ScoreRun, model_run: UpliftModelRun | None) -> UpliftScores:
    """Every profile of the published run with its predicted uplift; the persuadable audience is the top
    uplift.audience_share of the profiles in an audience, above zero. With no model (``None``: none trained yet)
    or one that did not beat random targeting, every profile's band is ``none``."""
    store, spec = stage.store, stage.spec
    scores = store.read_parquet([published.key]).select(ID, "group")
    if model_run is None or not model_run.gated:
        frame = scores.select(ID, pl.lit(None, pl.Float64).alias("uplift"), pl.lit(NONE).alias("uplift_band"),
                              "group")
        return UpliftScores(UpliftScoreRun(published.scored_at, "", False, "", 0, math.nan), frame)
    learner = XLearner.from_json(json.loads(store.read_bytes(model_run.model_key)))
    frame = scores.join(store.read_parquet([published.features_key]), on=ID, how="left", maintain_order="left")
    missing = [f for f in learner.features if f not in frame.columns]
    if missing:
        raise ValueError(f"The uplift model {model_run.version} uses features the published scores' features lack: "
                         f"{missing} (the feature set changed since it trained). Materialise "
                         f"{stage.names.model}/uplift_model again once a window has closed on the new features.")
    uplift = learner.predict(frame.select([pl.col(c).cast(pl.Float64) for c in learner.features]).to_numpy())
    in_audience = frame["group"].is_not_null().to_numpy()  # not a converted marker
    ranked = np.where(in_audience, uplift, -np.inf)
    top = np.argsort(-ranked, kind="stable")[:int(spec.uplift.audience_share * in_audience.sum())]
    top = top[ranked[top] > 0]
    band = np.full(frame.height, OTHER, dtype=object)
    band[top] = PERSUADABLE
    out = frame.select(ID, pl.Series("uplift", uplift), pl.Series("uplift_band", band, dtype=pl.Utf8), "group")
    return UpliftScores(UpliftScoreRun(published.scored_at, model_run.version, True, "", int(top.size),
                                       float(uplift[top].min()) if top.size else math.nan), out)


def uplift_records(scores: pl.DataFrame, tenant: str, version: str, scored_at: str) -> pa.Table:
    fields = scores.select(pl.col(ID).alias("userid"), pl.col("uplift").alias("upliftScore"),
                           pl.col("uplift_band").alias("upliftBand"), pl.col("group").alias("upliftGroup"),
                           pl.lit(version or None, pl.Utf8).alias("upliftModelVersion"),
                           pl.lit(scored_at).alias("upliftScoredAt"))
    return pa.table({f"_{tenant}": pa.StructArray.from_arrays([fields[c].to_arrow() for c in fields.columns],
                                                              names=fields.columns)})


def publish_uplift(stage: StageContext) -> UpliftScores:
    """The published run's uplift scores into the model's profile-enabled uplift dataset (one batch replacing the
    earlier ones), and kept in storage per run. Without a model that beat random targeting the bands are ``none``
    (written only over earlier uplift scores, which must stop steering)."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    published = ScoreRun.load(store, names.scores_pointer, asset=f"{names.model}/aep_score_dataset")
    model_run = UpliftModelRun.load_if_any(store, names.uplift_model)  # none yet: a rescore before any window
    scored = predict_uplift(stage, published, model_run)
    run = scored.run
    key = names.uplift_scores_file(published.scored_at)
    store.write_parquet(key, scored.scores)
    run = replace(run, key=key)
    if run.gated or client.catalog.find_dataset(names.uplift_dataset) is not None:
        ds = ensure_owned_dataset(client, names.uplift_dataset, require_schema(client, "uplift", spec.events.namespace)[
            "$id"], names.model, profile=True, description=f"Uplift scores of model {names.model}, by aep_assets.")
        batch = replace_dataset_rows(client, ds, [uplift_records(scored.scores, client.schemas.tenant_id(),
                                                                 run.model_version, run.scored_at)], owner=names.model)
        if batch["status"] != "success":
            raise RuntimeError(f"The uplift batch {batch['id']} of dataset {ds['name']!r} ended {batch['status']}; "
                               "its errors in AEP (Catalog: the batch's failed files) say which rows.")
        run = replace(run, batch_id=batch["id"])
    run.save(store, names.uplift_scores(published.scored_at))
    run.save(store, names.uplift_scores_pointer)
    return UpliftScores(run, scored.scores)


def persuadable_pql(tenant: str, group: str) -> str:
    return f'_{tenant}.upliftBand = "{PERSUADABLE}" and _{tenant}.upliftGroup = "{group}"'


@dataclass(frozen=True)
class PersuadableAudiences:
    status: str
    run: UpliftScoreRun | None = None
    segments: dict | None = None  # treatment / control -> segment
    sizes: dict | None = None
    file: str = ""

    def metadata(self) -> dict:
        meta = {"status": self.status}
        if self.segments:
            meta.update({"scored_at": self.run.scored_at, "uplift_model_version": self.run.model_version,
                         "persuadable_size": self.sizes[TREATMENT], "persuadable_control_size": self.sizes[CONTROL],
                         "segments": {k: {"id": s["id"], "name": s["name"], "pql": s["expression"]["value"]}
                                      for k, s in self.segments.items()},
                         "dagster/uri": self.file})
        return meta


def steer_persuadable(stage: StageContext) -> PersuadableAudiences:
    """With a model that beat random targeting: the persuadable audience (its treatment members) and its control
    group as segments, evaluated, and the audience activated by the model's file flow; its activation is kept, so
    outcome tracking knows who was treated."""
    client, store, names = stage.client, stage.store, stage.names
    run = UpliftScoreRun.load_if_any(store, names.uplift_scores_pointer)
    if run is None or not run.gated:
        return PersuadableAudiences("no uplift model has beaten random targeting with confidence: no audience is "
                                    "steered by uplift", run)
    if run.persuadable == 0:
        return PersuadableAudiences("the uplift model predicts no profile above zero: nobody to persuade", run)
    tenant = client.schemas.tenant_id()
    segments = {group: client.segmentation.ensure_segment(
        name, persuadable_pql(tenant, group),
        description=f"Profiles model {names.model}'s uplift model ranks most changed by a campaign "
                    f"({'activated' if group == TREATMENT else 'held out as the control group'}), managed by "
                    "aep_assets.")[0]
        for group, name in ((TREATMENT, names.persuadable_audience()), (CONTROL, names.persuadable_control()))}
    job = client.segmentation.evaluate([s["id"] for s in segments.values()])
    sizes = {g: int(job["metrics"]["segmentedProfileCounter"].get(s["id"], 0)) for g, s in segments.items()}
    done = activate_audiences(client, store, names.flow("persuadable activation"), [segments[TREATMENT]],
                              [f"_{tenant}.upliftScore", f"_{tenant}.upliftBand"],
                              path=names.export_path("persuadable"))
    activation = UpliftActivation(run.scored_at, datetime.now(UTC).isoformat(timespec="seconds"),
                                  done.files[segments[TREATMENT]["id"]], done.members(segments[TREATMENT]["id"]),
                                  sizes[CONTROL])
    activation.save(store, names.uplift_activation(run.scored_at))
    return PersuadableAudiences("steering: the persuadable audience is activated", run, segments, sizes,
                                store.uri(activation.file))
