"""Features as of now for every profile, and their scores."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from ..ml.drift import SCORE, DriftPolicy
from ..ml.feature_set import FeatureSet
from ..ml.scoring import BandPolicy, choose_bands
from ..pipeline.exports import export_dataset
from ..pipeline.features import (
    build_feature_dataset,
    feature_fragments,
    feature_params,
    resolve_sources,
)
from ..pipeline.handoff import ScoreRun, ScoringExport
from ..pipeline.model_store import load_current_model
from ..pipeline.rescoring import INCREMENTAL, RescorePlan, load_published, plan_rescore, rescore, scope_predicate
from ..pipeline.spec import parse_time
from ..pipeline.synthetic import simulation_until
from ..resources import AEPResource, StorageResource
from .instance import SCORING, Instance
from .metadata import md_table, sql_md


class ScoringFeaturesConfig(dg.Config):
    cutoff: str = Field(default="", description="Score as of this ISO date or datetime (UTC); default: the "
                                                "model's scoring.as_of, or now.")
    mode: str = Field(default="auto", description="'auto' rescores only the profiles with events in new batches "
                      "(everyone when the model changed, profiles changed or scores expired); 'full' rescores "
                      "everyone.")


class ScoreConfig(dg.Config):
    high_band: str = Field(default="top_decile", description="How the high band is chosen from held-out gains: "
                           "'top_decile', 'reach' (the top `reach` share) or 'precision' (the largest reach whose "
                           "held-out precision is at least `target_precision`).")
    reach: float = Field(default=0.10, description="Share of profiles in the high band for the 'reach' policy.")
    target_precision: float = Field(default=0.0, description="Held-out conversion rate the high band must reach "
                                                             "for the 'precision' policy.")
    medium_reach: float = Field(default=0.30, description="Share of profiles in the medium band, below the high.")
    valid_days: int = Field(default=0, description="Scores expire this many days after scoring; a rescore then "
                                                  "covers every profile. 0: the model's scoring.valid_days.")
    reason_method: str = Field(default="shap", description="'shap' (exact TreeSHAP) or 'path' (path attribution, "
                               "several times faster at millions of profiles; see ml/explain.py).")
    drift_warn: float = Field(default=0.1, description="PSI above which the drift check warns.")
    drift_block: float = Field(default=0.25, description="PSI above which the drift check fails and blocks the "
                                                         "write-back to AEP.")


def build(m: Instance) -> list:
    names, spec = m.names, m.spec

    @dg.asset(key=m.key("scoring_features"), group_name=m.group(SCORING),
              deps=[*m.sources, m.key("propensity_model")], kinds={"adobe", "sql", "parquet"})
    def scoring_features(context: dg.AssetExecutionContext, config: ScoringFeaturesConfig, aep: AEPResource,
                         storage: StorageResource) -> dg.MaterializeResult:
        """The model's feature SQL run with T = now (no label), by Query Service CTAS from
        sql/scoring_features.sql, then exported to storage: for every profile with events, or only for those
        with events in batches the published scores do not reflect yet (see pipeline/rescoring.py)."""
        client, store = aep.client(), storage.get()
        as_of = config.cutoff or spec.scoring.as_of
        cutoff = parse_time("cutoff", as_of) if as_of else _present(store)
        model = load_current_model(store, names.model_pointer, names.models)
        fs = FeatureSet.from_json(model.card["feature_set"])
        sources = resolve_sources(client, spec, names)
        plan = plan_rescore(
            load_published(store, names.scores_pointer), model_version=model.version,
            event_batches=[b for ds in sources.events for b in client.ingestion.active_batch_ids(ds["id"])],
            profile_batches=client.ingestion.active_batch_ids(sources.profiles["id"]) if sources.profiles else [],
            cutoff=cutoff, requested=config.mode)
        context.log.info("%s rescore: %s", plan.mode, plan.reason)
        meta = {"mode": plan.mode, "reason": plan.reason, "cutoff": cutoff.isoformat(),
                "new_batches": dg.MetadataValue.json(plan.new_batches), "event_batches": len(plan.event_batches)}
        if plan.mode == INCREMENTAL and not plan.new_batches:
            ScoringExport(cutoff.isoformat(), plan.to_json()).save(store, names.scoring_export)
            return dg.MaterializeResult(metadata={**meta, "dagster/row_count": 0})
        build = build_feature_dataset(
            client, name="scoring_features", owner=m.name, table_prefix=names.table_prefix("scoring_features"),
            params=feature_params(client, sources, {"score": cutoff}, 0, scope_predicate(plan)),
            fragments=feature_fragments(fs, sources), input_dataset_ids=sources.dataset_ids)
        export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("scoring export"),
                                path=names.export_path("scoring"))
        ScoringExport(cutoff.isoformat(), plan.to_json(), export.keys, build.dataset["id"]).save(
            store, names.scoring_export)
        return dg.MaterializeResult(metadata={
            **meta, "dagster/row_count": export.rows, "dataset_id": build.dataset["id"],
            "dagster/table_name": build.table, "query_id": build.query["id"] if build.query else "reused",
            "flow_id": export.flow["id"], "run_id": export.run_id, "dagster/uri": store.uri(export.folder),
            "sql": sql_md(build.sql),
        })

    def _present(store) -> datetime:
        """Now, or for a simulated source the simulated world's present: its events stop there, and scoring
        later than that would measure every recency from a day with no events (a drift of the clock)."""
        if spec.simulated:
            return simulation_until(store, names.simulation)
        return datetime.now(UTC).replace(second=0, microsecond=0)

    scores_key = m.key("propensity_scores")

    @dg.asset(key=scores_key, group_name=m.group(SCORING), deps=[m.key("scoring_features"), m.key("propensity_model")],
              kinds={"lightgbm", "parquet"},
              check_specs=[
                  dg.AssetCheckSpec("scores_valid", asset=scores_key, blocking=True,
                                    description="Every eligible profile is scored once, with a propensity in "
                                                "[0, 1] and three reason codes."),
                  dg.AssetCheckSpec("drift", asset=scores_key, blocking=True,
                                    description="PSI of the scores and of every feature against the training set: "
                                                "warns above drift_warn, blocks the write-back above drift_block."),
              ])
    def propensity_scores(context: dg.AssetExecutionContext, config: ScoreConfig,
                          storage: StorageResource) -> dg.MaterializeResult:
        """Calibrated propensity, 0-100 score, percentile, decile, band, expiry and the top three reason codes
        for every eligible profile, with the model version, in a Parquet file whose columns include
        profile_id (the identity value as the source holds it) and propensity. Band thresholds come from the
        model's held-out gains. An incremental run rescores only the profiles scoring_features covered and
        merges them into the published scores."""
        store = storage.get()
        model = load_current_model(store, names.model_pointer, names.models)
        bands, expected = choose_bands(BandPolicy(config.high_band, config.reach, config.target_precision,
                                                  config.medium_reach), model.holdout)
        export = ScoringExport.load(store, names.scoring_export, asset=f"{m.name}/scoring_features")
        plan = RescorePlan(**export.plan)
        features = store.read_parquet(export.keys) if export.keys else None
        scored_at = datetime.now(UTC).replace(microsecond=0)
        valid_days = config.valid_days or spec.scoring.valid_days
        run = rescore(model, plan, features, load_published(store, names.scores_pointer), store, bands,
                      scored_at=scored_at, valid_for=timedelta(days=valid_days), reason_method=config.reason_method)
        base = f"{names.scores}/{model.version}/{scored_at:%Y%m%dT%H%M%S}"
        keys = {name: f"{base}/{name}.parquet" for name in ("scores", "features", "changes")}
        uri = store.write_parquet(keys["scores"], run.merged.scores)
        store.write_parquet(keys["features"], run.merged.features)
        store.write_parquet(keys["changes"], run.merged.changes)
        drift = model.drift_reference.psi(run.merged.features, run.merged.scores["propensity"].to_numpy()) \
            if model.drift_reference else {}
        policy = DriftPolicy(config.drift_warn, config.drift_block)
        verdict = policy.verdict(drift)
        ScoreRun(key=keys["scores"], features_key=keys["features"], changes_key=keys["changes"],
                 model_version=model.version, bands=bands.__dict__, expected_conversion_rate=expected,
                 horizon_days=model.card.get("horizon_days"), cutoff=export.cutoff, scored_at=scored_at.isoformat(),
                 expires_at=run.expires_at.isoformat(), mode=plan.mode, reason=plan.reason,
                 event_batches=plan.event_batches, profile_batches=plan.profile_batches,
                 drift=verdict).save(store, names.scores_candidate)
        scores = run.merged.scores
        by_band = scores.group_by("band").agg(pl.len().alias("profiles"), pl.col("propensity").mean().alias("mean"))
        if verdict != "ok":
            context.log.warning("drift %s: largest PSI %s", verdict, next(iter(drift.items())))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": scores.height, "dagster/uri": uri, "model_version": model.version,
                "mode": plan.mode, "reason": plan.reason, "rescored_profiles": run.rescored,
                "converted_since_last_score": run.converted, "changed_rows": run.merged.changes.height,
                "already_converted": run.already_converted,
                "mean_propensity": float(scores["propensity"].mean() or 0),
                "high_min_percentile": bands.high_min_percentile,
                "medium_min_percentile": bands.medium_min_percentile,
                **{f"{band}_expected_conversion_rate": rate for band, rate in expected.items()},
                "score_psi": drift.get(SCORE, float("nan")), "max_feature_psi": max(
                    (v for k, v in drift.items() if k != SCORE), default=float("nan")),
                "write_back": "enabled" if m.writes_back else "dry run: nothing goes to AEP",
                "bands": md_table(by_band.sort("band")),
                "preview": md_table(scores.sort("propensity", descending=True)),
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

    return [scoring_features, propensity_scores]
