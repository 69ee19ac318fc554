"""Features as of now for every profile, and their scores."""

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from pydantic import Field

from ..constants import (
    MODEL_POINTER,
    SCORES_POINTER,
    SCORING,
    SCORING_EXPORT_FLOW,
    SCORING_EXPORT_POINTER,
    SCORING_TABLE_PREFIX,
)
from ..ml.scoring import Bands, score_frame
from ..pipeline.exports import export_dataset
from ..pipeline.features import build_feature_dataset, feature_params
from ..pipeline.model_store import load_current_model
from ..resources import AEPResource, StorageResource
from .metadata import md_table, sql_md


@dg.asset(group_name=SCORING, deps=["synthetic_events", "synthetic_profiles"],
          kinds={"adobe", "sql", "parquet"})
def scoring_features(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """The feature SQL run with T = now for every profile (no label), by Query Service CTAS from
    sql/scoring_features.sql, then exported to storage."""
    client, store = aep.client(), storage.get()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    params, inputs = feature_params(client, now, horizon_days=0)
    build = build_feature_dataset(client, name="scoring_features", table_prefix=SCORING_TABLE_PREFIX,
                                  params=params, input_dataset_ids=inputs)
    export = export_dataset(client, store, build.dataset["id"], flow_name=SCORING_EXPORT_FLOW,
                            path="aep_assets/scoring")
    store.write_bytes(SCORING_EXPORT_POINTER, json.dumps({"dataset_id": build.dataset["id"], "keys": export.keys,
                                                          "cutoff": now.isoformat()}).encode())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": export.rows, "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
        "cutoff": now.isoformat(), "run_id": export.run_id, "dagster/uri": store.uri(export.folder),
        "sql": sql_md(build.sql),
    })


class ScoreConfig(dg.Config):
    high_min_percentile: int = Field(default=90, description="Profiles at or above this percentile are 'high'.")
    medium_min_percentile: int = Field(default=60, description="At or above this (and below high) are 'medium'.")


@dg.asset(group_name=SCORING, deps=["scoring_features", "propensity_model"], kinds={"lightgbm", "parquet"},
          check_specs=[dg.AssetCheckSpec("scores_valid", asset="propensity_scores", blocking=True,
                                         description="Every profile scored once, propensities in [0, 1].")])
def propensity_scores(config: ScoreConfig, storage: StorageResource) -> dg.MaterializeResult:
    """Propensity, 0-100 score, percentile, decile and band for every profile, with the model version."""
    store = storage.get()
    bands = Bands(config.high_min_percentile, config.medium_min_percentile)
    version, booster = load_current_model(store, MODEL_POINTER)
    features = store.read_parquet(json.loads(store.read_bytes(SCORING_EXPORT_POINTER))["keys"])
    scored_at = datetime.now(UTC).replace(microsecond=0)
    scores = score_frame(booster, features, model_version=version, scored_at=scored_at, bands=bands)
    key = f"scores/{version}/{scored_at:%Y%m%dT%H%M%S}.parquet"
    uri = store.write_parquet(key, scores)
    store.write_bytes(SCORES_POINTER, json.dumps({"key": key, "model_version": version,
                                                  "bands": bands.__dict__}).encode())
    by_band = scores.group_by("band").agg(pl.len().alias("profiles"), pl.col("propensity").mean().alias("mean"))
    valid = (scores["userId"].n_unique() == features.height == scores.height
             and bool(scores["propensity"].is_between(0, 1).all()))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.height, "dagster/uri": uri, "model_version": version,
            "mean_propensity": float(scores["propensity"].mean()),
            "bands": md_table(by_band.sort("band")), "preview": md_table(scores.sort("propensity", descending=True)),
        },
        check_results=[dg.AssetCheckResult(check_name="scores_valid", passed=valid,
                                           metadata={"rows": scores.height, "profiles": features.height})],
    )
