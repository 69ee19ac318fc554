"""Features as of now for every profile, and their scores."""

import json
from datetime import UTC, datetime, timedelta

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
from ..ml.scoring import BandPolicy, choose_bands, score_frame
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
    params, inputs = feature_params(client, {"score": now}, horizon_days=0)
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
    high_band: str = Field(default="top_decile", description="How the high band is chosen from held-out gains: "
                           "'top_decile', 'reach' (the top `reach` share) or 'precision' (the largest reach whose "
                           "held-out precision is at least `target_precision`).")
    reach: float = Field(default=0.10, description="Share of profiles in the high band for the 'reach' policy.")
    target_precision: float = Field(default=0.0, description="Held-out conversion rate the high band must reach "
                                                             "for the 'precision' policy.")
    medium_reach: float = Field(default=0.30, description="Share of profiles in the medium band, below the high.")
    valid_days: int = Field(default=7, description="Scores expire this many days after scoring.")


@dg.asset(group_name=SCORING, deps=["scoring_features", "propensity_model"], kinds={"lightgbm", "parquet"},
          check_specs=[dg.AssetCheckSpec("scores_valid", asset="propensity_scores", blocking=True,
                                         description="Every profile not yet converted is scored once, with a "
                                                     "propensity in [0, 1] and three reason codes.")])
def propensity_scores(config: ScoreConfig, storage: StorageResource) -> dg.MaterializeResult:
    """Calibrated propensity, 0-100 score, percentile, decile, band, expiry and the top three reason codes
    for every profile that has not converted yet, with the model version. Band thresholds come from the
    model's held-out gains."""
    store = storage.get()
    model = load_current_model(store, MODEL_POINTER)
    bands, expected = choose_bands(BandPolicy(config.high_band, config.reach, config.target_precision,
                                              config.medium_reach), model.holdout)
    features = store.read_parquet(json.loads(store.read_bytes(SCORING_EXPORT_POINTER))["keys"])
    eligible = features.filter(pl.col("convertedBeforeCutoff") == 0)
    scored_at = datetime.now(UTC).replace(microsecond=0)
    scores = score_frame(model.booster, model.calibrator, model.features, eligible, model_version=model.version,
                         scored_at=scored_at, valid_for=timedelta(days=config.valid_days), bands=bands)
    key = f"scores/{model.version}/{scored_at:%Y%m%dT%H%M%S}.parquet"
    uri = store.write_parquet(key, scores)
    store.write_bytes(SCORES_POINTER, json.dumps({"key": key, "model_version": model.version,
                                                  "bands": bands.__dict__, "expected_conversion_rate": expected,
                                                  "horizon_days": model.card.get("horizon_days")}).encode())
    by_band = scores.group_by("band").agg(pl.len().alias("profiles"), pl.col("propensity").mean().alias("mean"))
    valid = (scores["userId"].n_unique() == eligible.height == scores.height
             and bool(scores["propensity"].is_between(0, 1).all())
             and all(scores[f"reason_{k}"].null_count() == 0 for k in (1, 2, 3)))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.height, "dagster/uri": uri, "model_version": model.version,
            "already_converted": features.height - eligible.height,
            "mean_propensity": float(scores["propensity"].mean()),
            "high_min_percentile": bands.high_min_percentile, "medium_min_percentile": bands.medium_min_percentile,
            **{f"{band}_expected_conversion_rate": rate for band, rate in expected.items()},
            "bands": md_table(by_band.sort("band")), "preview": md_table(scores.sort("propensity", descending=True)),
        },
        check_results=[dg.AssetCheckResult(check_name="scores_valid", passed=valid,
                                           metadata={"rows": scores.height, "eligible_profiles": eligible.height})],
    )
