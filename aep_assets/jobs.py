"""Jobs: the whole graph, rescoring, retraining, and new simulated data landing in AEP."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from .constants import SIMULATION_PREFIX
from .pipeline.synthetic import load_simulation, publish_new_events, save_simulation
from .resources import AEPResource, StorageResource
from .simulation.continuation import continue_simulation

RESCORE_ASSETS = ("scoring_features", "propensity_scores", "aep_score_dataset", "propensity_audiences",
                  "audience_activation")

pipeline_job = dg.define_asset_job("aep_pipeline", selection=dg.AssetSelection.all(),
                                   description="Materialise the whole graph, from XDM schemas to activation.")

rescore_job = dg.define_asset_job(
    "rescore", selection=dg.AssetSelection.assets(*RESCORE_ASSETS),
    description="Rescore the profiles whose events changed (all of them when the model changed or scores "
                "expired), write their scores back to AEP and refresh the audiences.")

retrain_job = dg.define_asset_job(
    "retrain", selection=dg.AssetSelection.assets("feature_table").downstream(),
    description="Rebuild the training features at today's cutoffs, retrain, and rescore everyone with the new "
                "model.")


class NewEventsConfig(dg.Config):
    days: float = Field(default=1.0, description="How long to continue the simulation. New events never lie in the "
                                                 "future: the period stops at the current time.")
    profile_share: float = Field(default=1.0, description="Share of profiles active in the period; the others "
                                                          "stay quiet.")
    seed: int | None = Field(default=None, description="Seed of the continuation; default: the simulation's seed.")


@dg.op(description="Continue the simulation from the state it left every profile in, and ingest the new events "
                   "as a new batch of the events dataset.")
def continue_events(context: dg.OpExecutionContext, config: NewEventsConfig, aep: AEPResource,
                    storage: StorageResource) -> None:
    client, store = aep.client(), storage.get()
    sim = load_simulation(store, SIMULATION_PREFIX)
    now = datetime.now(UTC).replace(microsecond=0)
    period = min(timedelta(days=config.days), now - sim.until)
    if period < timedelta(minutes=1):
        raise ValueError(f"The simulation already reaches {sim.until.isoformat()}, and new events cannot lie in the "
                         "future. Wait, or re-materialise synthetic_profiles with an earlier 'as_of'.")
    cont = continue_simulation(sim, period, share=config.profile_share, seed=config.seed)
    published = publish_new_events(client, cont)
    save_simulation(store, SIMULATION_PREFIX, cont.simulation)
    context.log.info("%d new events for %d profiles in (%s, %s], batch %s", published.rows, cont.changed_profiles,
                     cont.start.isoformat(), cont.end.isoformat(), published.batch["id"])
    context.log_event(dg.AssetMaterialization(
        asset_key="synthetic_events", description="New events landed as a new batch.",
        metadata={"dataset_id": published.dataset["id"], "batch_id": published.batch["id"],
                  "batch_status": published.batch["status"], "new_events": published.rows,
                  "changed_profiles": cont.changed_profiles, "period_start": cont.start.isoformat(),
                  "period_end": cont.end.isoformat(), "period_hours": period.total_seconds() / 3600}))


@dg.job(description="Continue the simulation by a period (default one day) and ingest the new events into AEP as a "
                    "new batch; the new_events_sensor then requests a rescore.")
def simulate_new_events():
    continue_events()
