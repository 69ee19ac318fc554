"""The CMLE demo's simulated source as stage functions with typed results: the simulation published into
AEP, and the ground truth (the oracle) kept out of it."""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from ..aep import AEPClient
from ..simulation import Simulation, SimulationConfig, simulate
from ..simulation.campaign import campaign_effect, uplift_truth
from ..simulation.continuation import Continuation, Treatment, continue_simulation
from ..simulation.oracle import oracle_frame, state_at
from ..storage import Storage
from .handoff import ActivationRun, TrainingExport
from .naming import Names
from .stage_context import StageContext
from .synthetic import Published, load_simulation, publish_events, publish_new_events, publish_profiles, save_simulation
from .uplift import treated_members


@dataclass(frozen=True)
class SimulatedSource:
    simulation: Simulation
    profiles: Published
    events: Published


def simulate_and_publish(client: AEPClient, store: Storage, names: Names, config: SimulationConfig) -> SimulatedSource:
    """Simulate, keep the whole latent state in storage (the oracle needs it), and ingest the profiles and
    events into the demo's datasets. The profiles are ingested while their events are simulated, on one core."""
    with ThreadPoolExecutor(1, thread_name_prefix="publish-profiles") as pool:
        profiles: list[Future[Published]] = []
        sim = simulate(config, on_profiles=lambda frame: profiles.append(
            pool.submit(publish_profiles, client, frame, names)))
        save_simulation(store, names.simulation, sim)
        published = profiles[0].result()  # a failure surfaces before the events' long ingestion
        return SimulatedSource(sim, published, publish_events(client, sim, names))


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


def campaign_treatment(stage: StageContext, sim: Simulation, uplift: float, effect: str) -> Treatment | None:
    """The planted effect of the last activation, from the activated scores' cutoff over the goal's outcome window.
    ``uniform``: on its ``simulation.planted_band`` members. ``heterogeneous``: on every activated member, each as
    its segment responds (simulation/campaign.py); the first time, every profile's true uplift (0 with no effect)
    is kept beside the simulation for the oracle's side of the uplift model's evaluation."""
    store, spec, names = stage.store, stage.spec, stage.names
    if effect not in ("uniform", "heterogeneous"):
        raise ValueError(f"planted_effect = {effect!r}: use 'uniform' or 'heterogeneous' (simulation.planted_effect).")
    activation = ActivationRun.load_if_any(store, names.activation_pointer)
    if activation is None or (uplift <= 0 and effect == "uniform"):
        return None
    start, window = datetime.fromisoformat(activation.cutoff), timedelta(days=spec.goal.outcome_days)
    if effect == "uniform":
        if spec.simulation.planted_band not in activation.files:
            return None
        return Treatment(_rows(sim, activation.members(store, spec.simulation.planted_band)), uplift, start, window)
    response = campaign_effect(sim, start, max(uplift, 0.0))
    truth_key = names.uplift_truth(activation.scored_at)
    if not store.exists(truth_key) and sim.until == start:  # the state at the activation is the present
        store.write_parquet(truth_key, uplift_truth(sim, start, spec.goal.outcome_days, response))
    if uplift <= 0:
        return None
    rows = _rows(sim, treated_members(store, names, activation))
    return Treatment(rows, uplift, start, window, lift=response.lift[rows], damp=response.damp[rows])


def _rows(sim: Simulation, identities: pl.Series) -> np.ndarray:
    """The profile rows (positions in ``sim.profiles``) of ``identities``."""
    return (sim.profiles.with_row_index("row").filter(pl.col("userid").is_in(identities.implode()))["row"]
            .to_numpy().astype(np.int64))


def advance_simulation(stage: StageContext, *, days: float, profile_share: float, seed: int | None,
                       planted_uplift: float, past_now: bool, planted_effect: str | None = None) -> Advanced:
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
    treatment = campaign_treatment(stage, sim, planted_uplift, planted_effect or stage.spec.simulation.planted_effect)
    cont = continue_simulation(sim, period, share=profile_share, seed=seed, treatment=treatment)
    published = publish_new_events(stage.client, cont, names)
    save_simulation(store, names.simulation, cont.simulation)
    return Advanced(cont, published, treatment.rows.size if treatment else 0)
