"""The CMLE demo's simulated source as stage functions with typed results: the simulation published into
AEP, and the ground truth (the oracle) kept out of it."""

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from ..aep import AEPClient
from ..simulation import Simulation, SimulationConfig, simulate
from ..simulation.oracle import oracle_frame
from ..storage import Storage
from .handoff import TrainingExport
from .naming import Names
from .synthetic import Published, load_simulation, publish_events, publish_profiles, save_simulation


@dataclass(frozen=True)
class SimulatedSource:
    simulation: Simulation
    profiles: Published
    events: Published


def simulate_and_publish(client: AEPClient, store: Storage, names: Names, config: SimulationConfig) -> SimulatedSource:
    """Simulate, keep the whole latent state in storage (the oracle needs it), and ingest the profiles and
    events into the demo's datasets."""
    sim = simulate(config)
    save_simulation(store, names.simulation, sim)
    return SimulatedSource(sim, publish_profiles(client, sim, names), publish_events(client, sim, names))


@dataclass(frozen=True)
class OracleTruth:
    truth: pl.DataFrame  # per profile: latent state, oracle probability, realised outcome
    uri: str
    cutoff: datetime
    horizon_days: int
    behaviour_model: str


def oracle_truth(store: Storage, names: Names, futures: int) -> OracleTruth:
    """The oracle at the temporal holdout's cutoff: K simulated futures of every profile from its true state."""
    export = TrainingExport.load(store, names.training_export, asset=f"{names.model}/training_export")
    cutoff, horizon = datetime.fromisoformat(export.test_cutoff), export.horizon_days
    sim = load_simulation(store, names.simulation)
    oracle = oracle_frame(sim, cutoff, horizon, k=futures)
    truth = sim.truth.join(oracle.drop("userid"), on="profile_index")
    return OracleTruth(truth, store.write_parquet(names.simulation_truth, truth), cutoff, horizon, sim.config.model)
