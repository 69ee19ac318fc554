"""Jobs of one model instance: its whole graph, rescoring, retraining, and (demo) new simulated data."""

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import dagster as dg
from pydantic import Field

from .assets.instance import Instance
from .pipeline.synthetic import load_simulation, publish_new_events, save_simulation
from .resources import AEPResource, StorageResource
from .simulation.continuation import continue_simulation

RESCORE_ASSETS = ("scoring_features", "propensity_scores", "aep_score_dataset", "propensity_audiences",
                  "audience_activation")
WRITE_BACK_ASSETS = ("aep_score_dataset", "propensity_audiences", "audience_activation")


def rescore_assets(m: Instance) -> list[dg.AssetKey]:
    return [m.key(a) for a in RESCORE_ASSETS if m.writes_back or a not in WRITE_BACK_ASSETS]


class ModelJobs(NamedTuple):
    """A model's asset jobs (what ``dg.define_asset_job`` returns; Dagster does not export that type)."""

    pipeline: Any
    rescore: Any
    retrain: Any


def model_jobs(m: Instance) -> ModelJobs:
    """``<name>`` (the whole graph), ``<name>_rescore`` and ``<name>_retrain``."""
    return ModelJobs(
        pipeline=dg.define_asset_job(
            m.name, selection=dg.AssetSelection.key_prefixes([m.name]),
            description=f"Materialise model {m.name}'s whole graph, from its sources to activation."),
        rescore=dg.define_asset_job(
            f"{m.name}_rescore", selection=dg.AssetSelection.assets(*rescore_assets(m)),
            description="Rescore the profiles whose events changed (all of them when the model changed or scores "
                        "expired), write their scores back to AEP and refresh the audiences."),
        retrain=dg.define_asset_job(
            f"{m.name}_retrain", selection=dg.AssetSelection.assets(m.key("feature_table")).downstream(),
            description="Rebuild the training features at the model's cutoffs, retrain, and rescore everyone "
                        "with the new model."),
    )


class NewEventsConfig(dg.Config):
    days: float = Field(default=1.0, description="How long to continue the simulation. New events never lie in the "
                                                 "future: the period stops at the current time.")
    profile_share: float = Field(default=1.0, description="Share of profiles active in the period; the others "
                                                          "stay quiet.")
    seed: int | None = Field(default=None, description="Seed of the continuation; default: the simulation's seed.")


def simulate_new_events_job(m: Instance) -> dg.JobDefinition:
    """The demo's new data: continue the simulation and land the events as a new batch."""
    names = m.names

    @dg.op(name=f"{m.name}__continue_events",
           description="Continue the simulation from the state it left every profile in, and ingest the new "
                       "events as a new batch of the events dataset.")
    def continue_events(context: dg.OpExecutionContext, config: NewEventsConfig, aep: AEPResource,
                        storage: StorageResource) -> None:
        client, store = aep.client(), storage.get()
        sim = load_simulation(store, names.simulation)
        now = datetime.now(UTC).replace(microsecond=0)
        period = min(timedelta(days=config.days), now - sim.until)
        if period < timedelta(minutes=1):
            raise ValueError(f"The simulation already reaches {sim.until.isoformat()}, and new events cannot lie in "
                             f"the future. Wait, or re-materialise {m.name}/synthetic_profiles with an earlier "
                             "'as_of'.")
        cont = continue_simulation(sim, period, share=config.profile_share, seed=config.seed)
        published = publish_new_events(client, cont, names)
        save_simulation(store, names.simulation, cont.simulation)
        context.log.info("%d new events for %d profiles in (%s, %s], batch %s", published.rows,
                         cont.changed_profiles, cont.start.isoformat(), cont.end.isoformat(), published.batch["id"])
        context.log_event(dg.AssetMaterialization(
            asset_key=m.key("synthetic_events"), description="New events landed as a new batch.",
            metadata={"dataset_id": published.dataset["id"], "batch_id": published.batch["id"],
                      "batch_status": published.batch["status"], "new_events": published.rows,
                      "changed_profiles": cont.changed_profiles, "period_start": cont.start.isoformat(),
                      "period_end": cont.end.isoformat(), "period_hours": period.total_seconds() / 3600}))

    @dg.job(name=f"{m.name}_simulate_new_events",
            description="Continue the simulation by a period (default one day) and ingest the new events into AEP "
                        "as a new batch; the model's new-events sensor then requests a rescore.")
    def simulate_new_events():
        continue_events()

    return simulate_new_events
