"""The CMLE demo's simulated source as stage functions with typed results: the simulation published into
AEP, and the ground truth (the oracle) kept out of it."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from ..aep import AEPClient
from ..simulation import Simulation, SimulationConfig, simulate
from ..simulation.continuation import Continuation, Treatment, continue_simulation
from ..simulation.oracle import oracle_frame, state_at
from ..storage import Storage
from .handoff import ActivationRun, TrainingExport
from .naming import Names
from .stage_context import StageContext
from .synthetic import Published, load_simulation, publish_events, publish_new_events, publish_profiles, save_simulation


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
    state = state_at(sim, cutoff)
    sim = replace(sim, events=sim.events.clear())  # the futures start from the state: free the history first
    oracle = oracle_frame(sim, cutoff, horizon, k=futures, state=state)
    truth = sim.truth.join(oracle.drop("userid"), on="profile_index")
    return OracleTruth(truth, store.write_parquet(names.simulation_truth, truth), cutoff, horizon, sim.config.model)


@dataclass(frozen=True)
class Advanced:
    continuation: Continuation
    published: Published
    treated: int  # activated members the planted effect applied to (0: none)


def campaign_treatment(stage: StageContext, sim: Simulation, uplift: float) -> Treatment | None:
    """The planted effect of the last activation: its ``simulation.planted_band`` members' rows, treated from the
    activated scores' cutoff over the goal's outcome window."""
    store, spec = stage.store, stage.spec
    activation = ActivationRun.load_if_any(store, stage.names.activation_pointer)
    if uplift <= 0 or activation is None or spec.simulation.planted_band not in activation.files:
        return None
    members = activation.members(store, spec.simulation.planted_band)
    rows = (sim.profiles.with_row_index("row").filter(pl.col("userid").is_in(members.implode()))["row"]
            .to_numpy().astype(np.int64))
    return Treatment(rows, uplift, datetime.fromisoformat(activation.cutoff), timedelta(days=spec.goal.outcome_days))


def advance_simulation(stage: StageContext, *, days: float, profile_share: float, seed: int | None,
                       planted_uplift: float, past_now: bool) -> Advanced:
    """Continue the simulated world by ``days`` and land its new events as a new batch. Without ``past_now`` the
    period stops at the current time; with it the simulated present may run ahead of the clock, which is how
    the demo lets an outcome window close today."""
    store, names = stage.store, stage.names
    sim = load_simulation(store, names.simulation)
    period = timedelta(days=days)
    if not past_now:
        period = min(period, datetime.now(UTC).replace(microsecond=0) - sim.until)
    if period < timedelta(minutes=1):
        raise ValueError(f"The simulation already reaches {sim.until.isoformat()}, and new events cannot lie in "
                         f"the future. Wait, set 'outcome_window: true' to let the simulated present run ahead of "
                         f"the clock, or re-materialise {names.model}/synthetic_profiles with an earlier 'as_of'.")
    treatment = campaign_treatment(stage, sim, planted_uplift)
    cont = continue_simulation(sim, period, share=profile_share, seed=seed, treatment=treatment)
    published = publish_new_events(stage.client, cont, names)
    save_simulation(store, names.simulation, cont.simulation)
    return Advanced(cont, published, treatment.rows.size if treatment else 0)
