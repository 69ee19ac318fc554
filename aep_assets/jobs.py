"""Jobs of one model instance: its whole graph, rescoring, retraining, and (demo) new simulated data."""

from typing import Any, NamedTuple

import dagster as dg
from pydantic import Field

from .assets.instance import Instance
from .pipeline.synthetic_stages import advance_simulation
from .resources import AEPResource, StorageResource

RESCORE_ASSETS = ("scoring_features", "propensity_scores", "aep_score_dataset", "propensity_audiences",
                  "audience_activation")
WRITE_BACK_ASSETS = ("aep_score_dataset", "propensity_audiences", "audience_activation")


UPLIFT_SCORING_ASSETS = ("uplift_scores", "persuadable_audiences")
UPLIFT_OUTCOME_ASSETS = ("uplift_model", "targeting_comparison")


def rescore_assets(m: Instance) -> list[dg.AssetKey]:
    return [*(m.key(a) for a in RESCORE_ASSETS if m.writes_back or a not in WRITE_BACK_ASSETS),
            *(m.key(a) for a in UPLIFT_SCORING_ASSETS if m.learns_uplift)]


class ModelJobs(NamedTuple):
    """A model's asset jobs (what ``dg.define_asset_job`` returns; Dagster does not export that type)."""

    pipeline: Any
    rescore: Any
    retrain: Any
    outcomes: Any

    @property
    def scoring(self) -> tuple[Any, ...]:
        """The jobs that score (a rescore request waits for them)."""
        return self.pipeline, self.rescore, self.retrain


def outcome_assets(m: Instance) -> list[dg.AssetKey]:
    return [m.key("score_outcomes"), *([m.key("audience_uplift")] if m.writes_back else []),
            *(m.key(a) for a in UPLIFT_OUTCOME_ASSETS if m.learns_uplift)]


def model_jobs(m: Instance) -> ModelJobs:
    """``<name>`` (the whole graph), ``<name>_rescore``, ``<name>_retrain`` and ``<name>_outcomes``."""
    return ModelJobs(
        pipeline=dg.define_asset_job(
            m.name, selection=dg.AssetSelection.key_prefixes([m.name]),
            description=f"Materialise model {m.name}'s whole graph, from its sources to activation."),
        rescore=dg.define_asset_job(
            f"{m.name}_rescore", selection=dg.AssetSelection.assets(*rescore_assets(m)),
            description="Rescore the profiles whose events changed (all of them when the model changed or scores "
                        "expired), write their scores back to AEP and refresh the audiences."),
        retrain=dg.define_asset_job(
            f"{m.name}_retrain", selection=dg.AssetSelection.assets(m.key("feature_table")).downstream()
            - dg.AssetSelection.assets(*outcome_assets(m)),
            description="Rebuild the training features at the model's cutoffs, retrain, and rescore everyone "
                        "with the new model."),
        outcomes=dg.define_asset_job(
            f"{m.name}_outcomes", selection=dg.AssetSelection.assets(*outcome_assets(m)),
            description="Look back at the scoring runs whose outcome window has closed: expected versus realised "
                        "conversion, each audience's uplift against its control group, and (learning uplift) the "
                        "uplift model and whether targeting by uplift beat targeting by propensity."),
    )


class NewEventsConfig(dg.Config):
    days: float = Field(default=1.0, description="How long to continue the simulation. New events never lie in the "
                                                 "future: the period stops at the current time.")
    profile_share: float = Field(default=1.0, description="Share of profiles active in the period; the others "
                                                          "stay quiet.")
    seed: int | None = Field(default=None, description="Seed of the continuation; default: the simulation's seed.")
    outcome_window: bool = Field(default=False, description="Continue by the goal's outcome window (goal."
                                 "outcome_days) instead of 'days', letting the simulated present run ahead of the "
                                 "clock, so the last scoring run's outcomes can be checked today.")
    planted_uplift: float = Field(default=-1.0, description="The planted effect of the last activation (see "
                                  "simulation.planted_uplift); -1: the model's value.")
    planted_effect: str = Field(default="", description="'uniform' or 'heterogeneous' (see "
                                "simulation.planted_effect); empty: the model's value.")


def simulate_new_events_job(m: Instance) -> dg.JobDefinition:
    """The demo's new data: continue the simulation and land the events as a new batch."""
    spec = m.spec

    @dg.op(name=f"{m.name}__continue_events",
           description="Continue the simulation from the state it left every profile in, and ingest the new "
                       "events as a new batch of the events dataset.")
    def continue_events(context: dg.OpExecutionContext, config: NewEventsConfig, aep: AEPResource,
                        storage: StorageResource) -> None:
        uplift = spec.simulation.planted_uplift if config.planted_uplift < 0 else config.planted_uplift
        advanced = advance_simulation(m.stage(storage, aep=aep),
                               days=spec.goal.outcome_days if config.outcome_window else config.days,
                               profile_share=config.profile_share, seed=config.seed, planted_uplift=uplift,
                               past_now=config.outcome_window, planted_effect=config.planted_effect or None)
        cont, published = advanced.continuation, advanced.published
        context.log.info("%d new events for %d profiles in (%s, %s], batch %s", published.rows,
                         cont.changed_profiles, cont.start.isoformat(), cont.end.isoformat(), published.batch["id"])
        context.log_event(dg.AssetMaterialization(
            asset_key=m.key("synthetic_events"), description="New events landed as a new batch.",
            metadata={"dataset_id": published.dataset["id"], "batch_id": published.batch["id"],
                      "batch_status": published.batch["status"], "new_events": published.rows,
                      "changed_profiles": cont.changed_profiles, "period_start": cont.start.isoformat(),
                      "period_end": cont.end.isoformat(),
                      "period_hours": (cont.end - cont.start).total_seconds() / 3600,
                      "planted_uplift": uplift if advanced.treated else 0.0, "treated_members": advanced.treated,
                      "campaign_conversions": cont.treated_conversions,
                      "prevented_conversions": cont.prevented_conversions}))

    @dg.job(name=f"{m.name}_simulate_new_events",
            description="Continue the simulation by a period (default one day, or the goal's outcome window) and "
                        "ingest the new events into AEP as a new batch; the model's new-events sensor then requests "
                        "a rescore.")
    def simulate_new_events():
        continue_events()

    return simulate_new_events
