"""Features as of now for every profile, and their scores."""

from typing import ClassVar

import dagster as dg
from pydantic import Field

from ..ml.scoring import BandPolicy
from ..pipeline.scoring_stages import build_scoring_features, score_profiles
from ..resources import AEPResource, MLflowResource, StorageResource
from .instance import SCORING, Instance, RunConfig
from .metadata import dagster_metadata, materialized
from .scoring_engines import job_runner


class ScoringFeaturesConfig(RunConfig):
    cutoff: str = Field(default="", description="This run only: score as of this ISO date or datetime (UTC) "
                                                "instead of the YAML's scoring.as_of (default: now).")
    mode: str = Field(default="auto", description="'auto' rescores only the profiles with events in new batches "
                      "(everyone when the model changed, profiles changed or scores expired); 'full' rescores "
                      "everyone.")

    YAML_KEYS: ClassVar[dict[str, str]] = {"cutoff": "scoring.as_of"}


class ScoreConfig(RunConfig):
    high_band: str = Field(default="top_decile", description="How the high band is chosen from held-out gains: "
                           "'top_decile', 'reach' (the top `reach` share) or 'precision' (the largest reach whose "
                           "held-out precision is at least `target_precision`).")
    reach: float = Field(default=0.10, description="Share of profiles in the high band for the 'reach' policy.")
    target_precision: float = Field(default=0.0, description="Held-out conversion rate the high band must reach "
                                                             "for the 'precision' policy.")
    medium_reach: float = Field(default=0.30, description="Share of profiles in the medium band, below the high.")
    valid_days: int = Field(default=0, description="This run only: scores expire this many days after scoring "
                            "(a rescore then covers every profile) instead of the YAML's scoring.valid_days; 0: the "
                            "YAML's.")
    reason_method: str = Field(default="shap", description="'shap' (exact TreeSHAP) or 'path' (path attribution, "
                               "an approximation that differs from SHAP on deep trees; see ml/explain.py).")
    engine: str = Field(default="", description="This run only: where it scores, 'subprocess', 'spark' (with the "
                        "YAML's scoring.spark) or 'local', instead of scoring.engine; empty: the YAML's.")
    drift_warn: float | None = Field(default=None, description="This run only: instead of the YAML's "
                                     "gates.drift.warn.")
    drift_block: float | None = Field(default=None, description="This run only: instead of gates.drift.block.")

    YAML_KEYS: ClassVar[dict[str, str]] = {"valid_days": "scoring.valid_days", "engine": "scoring.engine",
                                           "drift_warn": "gates.drift.warn", "drift_block": "gates.drift.block"}

    def band_policy(self) -> BandPolicy:
        return BandPolicy(self.high_band, self.reach, self.target_precision, self.medium_reach)


def build(m: Instance) -> list:
    @dg.asset(key=m.key("scoring_features"), group_name=m.group(SCORING),
              deps=[*m.sources, m.key("propensity_model")], kinds={"adobe", "sql", "parquet"})
    def scoring_features(context: dg.AssetExecutionContext, config: ScoringFeaturesConfig, aep: AEPResource,
                         storage: StorageResource, mlflow: MLflowResource) -> dg.MaterializeResult:
        """The champion's feature SQL run with T = now (no label), by Query Service CTAS from
        sql/scoring_features.sql, then exported to storage: for every profile with events, or only for those
        with events in batches the published scores do not reflect yet (see pipeline/rescoring.py)."""
        features = build_scoring_features(m.stage(storage, aep=aep, mlflow=mlflow, config=config),
                                          mode=config.mode)
        context.log.info("%s rescore: %s", features.plan.mode, features.plan.reason)
        return dg.MaterializeResult(metadata=dagster_metadata(features.metadata()))

    scores_key = m.key("propensity_scores")

    @dg.asset(key=scores_key, group_name=m.group(SCORING), deps=[m.key("scoring_features"), m.key("propensity_model")],
              kinds={"lightgbm", "parquet"},
              check_specs=[
                  dg.AssetCheckSpec("scores_valid", asset=scores_key, blocking=m.writes_back,
                                    description="Every eligible profile is scored once, with a propensity in "
                                                "[0, 1] and three reason codes."),
                  # The gate protects only the write-back: a dry run has none, so there it warns and never blocks.
                  dg.AssetCheckSpec("drift", asset=scores_key, blocking=m.writes_back,
                                    description="The scores and the features (weighted by the model's importance) "
                                                "against the rows the model was validated on: warns above "
                                                "gates.drift.warn; blocks the write-back above gates.drift.block, "
                                                "on a broken feature or on a population that shrank."),
              ])
    def propensity_scores(context: dg.AssetExecutionContext, config: ScoreConfig, storage: StorageResource,
                          mlflow: MLflowResource) -> dg.MaterializeResult:
        """Calibrated propensity, 0-100 score, percentile, decile, band, expiry and the top three reason codes
        for every eligible profile, with the model version, in a Parquet file whose columns include
        profile_id (the identity value as the source holds it) and propensity. Band thresholds come from the
        model's held-out gains. The scoring is a job handed off through Dagster Pipes (the YAML's
        scoring.engine: a chunked subprocess by default, or Spark), which reports its logs and metadata back. An
        incremental run rescores only the profiles scoring_features covered and merges them into the published
        scores. Features built for another model version than the champion's are refused."""
        stage = m.stage(storage, mlflow=mlflow, config=config)
        result = score_profiles(stage, config.band_policy(), job_runner(context, stage.spec.scoring),
                                reason_method=config.reason_method)
        return materialized(context, result.metadata(stage.registry.registered_name(m.name)), result.checks())

    return [scoring_features, propensity_scores]
