"""Synthetic profiles and events ingested into AEP, and the ground truth kept out of it."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from pydantic import Field

from ..pipeline.spec import parse_time
from ..pipeline.synthetic_stages import oracle_truth, simulate_and_publish
from ..resources import AEPResource, StorageResource
from ..simulation import SimulationConfig
from .instance import SOURCE, Instance
from .metadata import md_table, xdm_column_schema


class SyntheticConfig(dg.Config):
    n_profiles: int = Field(default=0, description="How many profiles to simulate; 0: the model's "
                                                   "simulation.profiles (Adobe's scale: 100,000).")
    seed: int = Field(default=-1, description="Seed of the simulation (the same seed gives the same data); -1: the "
                                              "model's simulation.seed.")
    as_of: str = Field(default="", description="The simulation's 'now' as an ISO date (UTC); default: today.")
    behaviour_model: str = Field(default="", description="'extended' (attribute effects and a recency decay of "
                                 "propensity) or 'adobe' (the notebooks' exact behaviour model); default: the "
                                 "model's simulation.behaviour_model.")


class OracleConfig(dg.Config):
    futures: int = Field(default=64, description="K: futures simulated per profile to estimate the oracle "
                                                 "probability.")


def build(m: Instance) -> list:
    """The simulated source of the CMLE demo: profiles and events in AEP, and the truth kept out of it."""
    names, sim_spec = m.names, m.spec.simulation
    schemas = m.key("xdm_schemas")

    @dg.multi_asset(
        name=f"{m.name}__synthetic_profiles",
        group_name=m.group(SOURCE),
        specs=[
            dg.AssetSpec(m.key("synthetic_profiles"), deps=[schemas], kinds={"adobe", "numpy"},
                         description="Simulated profiles with attributes and an ECID primary identity, "
                                     "batch-ingested into a profile-enabled AEP dataset."),
            dg.AssetSpec(m.key("synthetic_events"), deps=[schemas], kinds={"adobe", "numpy"},
                         description="Simulated experience events (Adobe's 13-type CMLE taxonomy, XDM payloads), "
                                     "batch-ingested into an AEP dataset."),
        ],
    )
    def synthetic_data(context: dg.AssetExecutionContext, config: SyntheticConfig, aep: AEPResource,
                       storage: StorageResource):
        as_of = (parse_time("as_of", config.as_of) if config.as_of
                 else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
        n_profiles = config.n_profiles or sim_spec.profiles
        seed = sim_spec.seed if config.seed < 0 else config.seed
        behaviour = config.behaviour_model or sim_spec.behaviour_model
        client = aep.client()
        source = simulate_and_publish(client, storage.get(), names, SimulationConfig(
            n_profiles=n_profiles, seed=seed, as_of=as_of, model=behaviour))
        sim, profiles, events = source.simulation, source.profiles, source.events
        context.log.info("simulated %d profiles and %d events as of %s", sim.profiles.height, sim.events.height,
                         as_of.isoformat())
        yield dg.MaterializeResult(asset_key=m.key("synthetic_profiles"), metadata={
            "dagster/column_schema": xdm_column_schema(
                client.schemas.get_schema(profiles.dataset["schemaRef"]["id"], full=True)["properties"]),
            "dagster/row_count": profiles.rows, "dataset_id": profiles.dataset["id"],
            "dagster/table_name": client.catalog.table_name(profiles.dataset), "batch_id": profiles.batch["id"],
            "seed": seed, "as_of": as_of.isoformat(), "behaviour_model": behaviour,
            "preview": md_table(sim.profiles.drop("email")),
        })
        per_type = sim.events.group_by("event_type").len().with_columns(
            (pl.col("len") / n_profiles).round(3).alias("per_profile")).sort("len", descending=True)
        yield dg.MaterializeResult(asset_key=m.key("synthetic_events"), metadata={
            "dagster/column_schema": xdm_column_schema(
                client.schemas.get_schema(events.dataset["schemaRef"]["id"], full=True)["properties"]),
            "dagster/row_count": events.rows, "dataset_id": events.dataset["id"],
            "dagster/table_name": client.catalog.table_name(events.dataset), "batch_id": events.batch["id"],
            "events_per_profile": events.rows / n_profiles,
            "first_event": sim.events["timestamp"].min().isoformat(),
            "last_event": sim.events["timestamp"].max().isoformat(),
            "events_by_type": md_table(per_type.with_columns(pl.col("event_type").cast(pl.Utf8)), rows=13),
        })

    @dg.asset(key=m.key("simulation_truth"), group_name=m.group(SOURCE),
              deps=[m.key("synthetic_events"), m.key("training_export")], kinds={"numpy", "parquet"})
    def simulation_truth(context: dg.AssetExecutionContext, config: OracleConfig,
                         storage: StorageResource) -> dg.MaterializeResult:
        """The ground truth AEP never sees, at the temporal holdout's cutoff T: each profile's latent state,
        the oracle probability P(conversion in (T, T+H] | true state at T) from K simulated futures, and
        the realised outcome. The model is measured against the oracle."""
        oracle = oracle_truth(storage.get(), names, config.futures)
        truth, uri, cutoff, horizon = oracle.truth, oracle.uri, oracle.cutoff, oracle.horizon_days
        context.log.info("oracle for %d profiles at %s, H=%d days, K=%d", truth.height, cutoff.isoformat(),
                         horizon, config.futures)
        eligible = truth.filter(~pl.col("converted_before_cutoff"))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": truth.height, "dagster/uri": uri, "cutoff": cutoff.isoformat(),
            "horizon_days": horizon, "futures": config.futures, "behaviour_model": oracle.behaviour_model,
            "conversion_rate": float(truth["converted"].mean()),
            "eligible_profiles": eligible.height,
            "horizon_conversion_rate": float(eligible["converted_in_horizon"].mean()),
            "mean_oracle_probability": float(eligible["oracle_probability"].mean()),
            "preview": md_table(truth.drop("conversion_time")),
        })

    return [synthetic_data, simulation_truth]
