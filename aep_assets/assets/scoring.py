"""Features as of now for every profile, and their scores."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from ..constants import (
    MODEL_POINTER,
    SCORES_CANDIDATE,
    SCORES_POINTER,
    SCORING,
    SCORING_EXPORT_FLOW,
    SCORING_EXPORT_POINTER,
    SCORING_TABLE_PREFIX,
)
from ..ml.drift import SCORE, DriftPolicy
from ..ml.scoring import BandPolicy, choose_bands
from ..pipeline.exports import export_dataset
from ..pipeline.features import build_feature_dataset, feature_params, parse_time
from ..pipeline.model_store import current_version, load_current_model
from ..pipeline.platform import EVENT_DATASET, PROFILE_DATASET, require_dataset
from ..pipeline.rescoring import INCREMENTAL, RescorePlan, load_published, plan_rescore, rescore, scope_predicate
from ..resources import AEPResource, StorageResource
from .metadata import md_table, sql_md


class ScoringFeaturesConfig(dg.Config):
    cutoff: str = Field(default="", description="Score as of this ISO date or datetime (UTC); default: now.")
    mode: str = Field(default="auto", description="'auto' rescores only the profiles with events in new batches "
                      "(everyone when the model changed, profiles changed or scores expired); 'full' rescores "
                      "everyone.")


@dg.asset(group_name=SCORING, deps=["synthetic_events", "synthetic_profiles", "propensity_model"],
          kinds={"adobe", "sql", "parquet"})
def scoring_features(context: dg.AssetExecutionContext, config: ScoringFeaturesConfig, aep: AEPResource,
                     storage: StorageResource) -> dg.MaterializeResult:
    """The feature SQL run with T = now (no label), by Query Service CTAS from sql/scoring_features.sql, then
    exported to storage: for every profile, or only for those with events in batches the published scores
    do not reflect yet (read by batch id, see pipeline/rescoring.py)."""
    client, store = aep.client(), storage.get()
    cutoff = (parse_time("cutoff", config.cutoff) if config.cutoff
              else datetime.now(UTC).replace(second=0, microsecond=0))
    model_version = current_version(store, MODEL_POINTER)
    if model_version is None:
        raise FileNotFoundError("No model yet; materialise propensity_model first.")
    events, profiles = (require_dataset(client, EVENT_DATASET, "synthetic_events"),
                        require_dataset(client, PROFILE_DATASET, "synthetic_profiles"))
    plan = plan_rescore(load_published(store, SCORES_POINTER), model_version=model_version,
                        event_batches=client.ingestion.active_batch_ids(events["id"]),
                        profile_batches=client.ingestion.active_batch_ids(profiles["id"]), cutoff=cutoff,
                        requested=config.mode)
    context.log.info("%s rescore: %s", plan.mode, plan.reason)
    meta = {"mode": plan.mode, "reason": plan.reason, "cutoff": cutoff.isoformat(),
            "new_batches": dg.MetadataValue.json(plan.new_batches), "event_batches": len(plan.event_batches)}
    if plan.mode == INCREMENTAL and not plan.new_batches:
        store.write_bytes(SCORING_EXPORT_POINTER, json.dumps({"keys": [], "cutoff": cutoff.isoformat(),
                                                              "plan": plan.to_json()}).encode())
        return dg.MaterializeResult(metadata={**meta, "dagster/row_count": 0})
    scope = scope_predicate(client.schemas.tenant_id(), client.catalog.table_name(events), plan)
    params, inputs = feature_params(client, {"score": cutoff}, horizon_days=0, scope=scope)
    build = build_feature_dataset(client, name="scoring_features", table_prefix=SCORING_TABLE_PREFIX,
                                  params=params, input_dataset_ids=inputs)
    export = export_dataset(client, store, build.dataset["id"], flow_name=SCORING_EXPORT_FLOW,
                            path="aep_assets/scoring")
    store.write_bytes(SCORING_EXPORT_POINTER, json.dumps({"dataset_id": build.dataset["id"], "keys": export.keys,
                                                          "cutoff": cutoff.isoformat(),
                                                          "plan": plan.to_json()}).encode())
    return dg.MaterializeResult(metadata={
        **meta, "dagster/row_count": export.rows, "dataset_id": build.dataset["id"],
        "dagster/table_name": build.table, "query_id": build.query["id"] if build.query else "reused",
        "flow_id": export.flow["id"], "run_id": export.run_id, "dagster/uri": store.uri(export.folder),
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
    valid_days: int = Field(default=7, description="Scores expire this many days after scoring; a rescore then "
                                                  "covers every profile.")
    reason_method: str = Field(default="shap", description="'shap' (exact TreeSHAP) or 'path' (path attribution, "
                               "several times faster at millions of profiles; see ml/explain.py).")
    drift_warn: float = Field(default=0.1, description="PSI above which the drift check warns.")
    drift_block: float = Field(default=0.25, description="PSI above which the drift check fails and blocks the "
                                                         "write-back to AEP.")


@dg.asset(group_name=SCORING, deps=["scoring_features", "propensity_model"], kinds={"lightgbm", "parquet"},
          check_specs=[
              dg.AssetCheckSpec("scores_valid", asset="propensity_scores", blocking=True,
                                description="Every profile not yet converted is scored once, with a propensity in "
                                            "[0, 1] and three reason codes."),
              dg.AssetCheckSpec("drift", asset="propensity_scores", blocking=True,
                                description="PSI of the scores and of every feature against the training set: "
                                            "warns above drift_warn, blocks the write-back above drift_block."),
          ])
def propensity_scores(context: dg.AssetExecutionContext, config: ScoreConfig,
                      storage: StorageResource) -> dg.MaterializeResult:
    """Calibrated propensity, 0-100 score, percentile, decile, band, expiry and the top three reason codes
    for every profile that has not converted yet, with the model version. Band thresholds come from the
    model's held-out gains. An incremental run rescores only the profiles scoring_features covered and
    merges them into the published scores."""
    store = storage.get()
    model = load_current_model(store, MODEL_POINTER)
    bands, expected = choose_bands(BandPolicy(config.high_band, config.reach, config.target_precision,
                                              config.medium_reach), model.holdout)
    export = json.loads(store.read_bytes(SCORING_EXPORT_POINTER))
    plan = RescorePlan(**export["plan"])
    features = store.read_parquet(export["keys"]) if export["keys"] else None
    scored_at = datetime.now(UTC).replace(microsecond=0)
    run = rescore(model, plan, features, load_published(store, SCORES_POINTER), store, bands,
                  scored_at=scored_at, valid_for=timedelta(days=config.valid_days), reason_method=config.reason_method)
    base = f"scores/{model.version}/{scored_at:%Y%m%dT%H%M%S}"
    keys = {name: f"{base}/{name}.parquet" for name in ("scores", "features", "changes")}
    uri = store.write_parquet(keys["scores"], run.merged.scores)
    store.write_parquet(keys["features"], run.merged.features)
    store.write_parquet(keys["changes"], run.merged.changes)
    drift = model.drift_reference.psi(run.merged.features, run.merged.scores["propensity"].to_numpy()) \
        if model.drift_reference else {}
    policy = DriftPolicy(config.drift_warn, config.drift_block)
    verdict = policy.verdict(drift)
    store.write_bytes(SCORES_CANDIDATE, json.dumps({
        "key": keys["scores"], "features_key": keys["features"], "changes_key": keys["changes"],
        "model_version": model.version, "bands": bands.__dict__, "expected_conversion_rate": expected,
        "horizon_days": model.card.get("horizon_days"), "cutoff": export["cutoff"], "scored_at": scored_at.isoformat(),
        "expires_at": run.expires_at.isoformat(), "mode": plan.mode, "reason": plan.reason,
        "event_batches": plan.event_batches, "profile_batches": plan.profile_batches, "drift": verdict,
    }).encode())
    scores = run.merged.scores
    by_band = scores.group_by("band").agg(pl.len().alias("profiles"), pl.col("propensity").mean().alias("mean"))
    if verdict != "ok":
        context.log.warning("drift %s: largest PSI %s", verdict, next(iter(drift.items())))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.height, "dagster/uri": uri, "model_version": model.version,
            "mode": plan.mode, "reason": plan.reason, "rescored_profiles": run.rescored,
            "converted_since_last_score": run.converted, "changed_rows": run.merged.changes.height,
            "already_converted": run.already_converted, "mean_propensity": float(scores["propensity"].mean() or 0),
            "high_min_percentile": bands.high_min_percentile, "medium_min_percentile": bands.medium_min_percentile,
            **{f"{band}_expected_conversion_rate": rate for band, rate in expected.items()},
            "score_psi": drift.get(SCORE, float("nan")), "max_feature_psi": max(
                (v for k, v in drift.items() if k != SCORE), default=float("nan")),
            "bands": md_table(by_band.sort("band")), "preview": md_table(scores.sort("propensity", descending=True)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="scores_valid", passed=run.valid, metadata={
                "rows": scores.height, "rescored_profiles": run.rescored}),
            dg.AssetCheckResult(
                check_name="drift", passed=verdict == "ok",
                severity=dg.AssetCheckSeverity.ERROR if verdict == "block" else dg.AssetCheckSeverity.WARN,
                metadata={"verdict": verdict if drift else "no drift reference: retrain the model to get one",
                          "warn_above": policy.warn, "block_above": policy.block,
                          "psi": md_table(pl.DataFrame({"column": list(drift), "psi": list(drift.values())})
                                          .with_columns(pl.col("psi").round(4)), rows=12) if drift else "none"}),
        ],
    )
