"""The oracle: P(conversion in (T, T+H] | the true state at T), by simulating K futures from that state.

The state of a profile at T is its latent propensity at T, whether it has converted, its traits, and
the events before T whose children may still land after T (an email opened an hour before T may
still be clicked). Each future redraws those children (exact, by Poisson thinning), draws fresh base
events in (T, T+H], cascades them, and walks the propensity forward. No model can beat this on
average; the trained model is measured against it.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from .behaviour import Simulation
from .engine import CHILD_WEEKS, CHILDREN, CONVERSION_LAG_S, DELTA, DRAWS, WEEK_S, Events, live
from .model import BehaviourModel, Traits
from .taxonomy import BASE_TYPES, CODE, CONVERSION_EVENT, EVENT_TYPES

PENDING_LOOKBACK_S = 30 * max(e.delay_hours for e in EVENT_TYPES) * 3600.0  # exp(-30): nothing pends longer
LANES_PER_CHUNK = 1_000_000  # futures are shared out among the threads in chunks of about this many lanes
CHUNKS_MULTIPLE = 4  # whole rounds for 1, 2 or 4 workers: none idles while another finishes a last chunk
STATE_SLICE = 100_000  # profiles whose state at the cutoff is read at once
MAX_WORKERS = 4


def _default_workers() -> int:
    """One thread per core, up to MAX_WORKERS."""
    return min(MAX_WORKERS, os.cpu_count() or 1)


@dataclass(frozen=True)
class State:
    cutoff: float  # epoch seconds
    propensity: np.ndarray  # per profile row, at the cutoff
    converted: np.ndarray  # converted before the cutoff
    pending: Events  # recent origin events before the cutoff; lane = profile row


def state_at(sim: Simulation, cutoff: datetime) -> State:
    """The true state of every profile at ``cutoff``, from the realised history, a slice of profiles at a time
    (the events are sorted by profile), so that it needs little memory beside the history itself. The slices
    share the cores: each fills only its own profiles' rows, and ``map`` keeps their pending origins in order."""
    t = cutoff.timestamp()
    tr = sim.traits
    first = sim.profiles["profile_index"].min()
    propensity, converted = tr.baseline.copy(), np.zeros(tr.baseline.size, bool)
    bounds = sim.events["profile_index"].search_sorted(
        pl.Series(np.arange(0, tr.baseline.size + STATE_SLICE, STATE_SLICE) + first))

    def state_of(lo: int, hi: int) -> Events:
        return _slice_state(sim.events.slice(lo, hi - lo), cutoff, first, sim.config.behaviour, tr, propensity,
                            converted)

    with ThreadPoolExecutor(_default_workers()) as pool:
        pending = list(pool.map(state_of, bounds[:-1], bounds[1:]))
    return State(t, propensity, converted, Events.concat(pending))


def _slice_state(events: pl.DataFrame, cutoff: datetime, first: int, model: BehaviourModel, tr: Traits,
                 propensity: np.ndarray, converted: np.ndarray) -> Events:
    """Fills ``propensity`` and ``converted`` for the profiles of ``events``; returns their pending origins."""
    t = cutoff.timestamp()
    ev = events.filter(pl.col("timestamp") < cutoff)
    rows = ev["profile_index"].to_numpy() - first
    codes = ev["event_type"].to_physical().to_numpy().astype(np.int8)
    times = ev["timestamp"].to_physical().to_numpy() / 1e6  # microseconds since the epoch
    converted[rows[codes == CODE[CONVERSION_EVENT]]] = True
    latent = ev["latent_propensity"].to_numpy()
    # Events are sorted by (profile, time): the last one with a propensity is each profile's latest state.
    with_p = np.nonzero(~np.isnan(latent))[0]
    final = with_p[np.append(rows[with_p][1:] != rows[with_p][:-1], True)]  # the last of each profile's run
    seen = rows[final]
    propensity[seen] = tr.baseline[seen] + (latent[final] - tr.baseline[seen]) * model.decay(t - times[final])
    recent = (times > t - PENDING_LOOKBACK_S) & np.isin(codes, list(CHILDREN))
    return Events(rows[recent].astype(np.int64), codes[recent], times[recent])


@dataclass(frozen=True)
class Futures:
    """What every future starts from, per eligible profile (not converted by the cutoff)."""

    model: BehaviourModel
    activity: np.ndarray
    baseline: np.ndarray
    propensity: np.ndarray  # at the cutoff
    pending_counts: np.ndarray  # pending origins per eligible profile
    pending: Events  # those origins, profile by profile; lane unused
    start: float  # the cutoff
    base_end: float  # base events stop here (the model's window may close before the horizon)
    end: float  # the horizon

    @property
    def profiles(self) -> int:
        return self.activity.size

    @cached_property
    def pending_offsets(self) -> np.ndarray:
        """Profile i's pending origins are ``pending``[offsets[i]:offsets[i + 1]]; counted once for every chunk."""
        return np.concatenate([[0], np.cumsum(self.pending_counts)])

    def conversion_chance(self, copies: int, seed: np.random.SeedSequence) -> np.ndarray:
        """Per eligible profile: the sum over ``copies`` futures of the chance of converting along each."""
        from .kernels import future_chances  # numba: compiled once, loaded when an oracle runs

        return future_chances(
            np.random.default_rng(seed), copies, self.activity, self.baseline, self.propensity, self.pending_offsets,
            self.pending.code, self.pending.time, *_PROCESS, CONVERSION_LAG_S, (self.model.decay_days or 0.0) * 86400.0,
            self.model.conversion_scale, self.start, self.base_end, float(np.nextafter(self.base_end, self.start)),
            self.end)


def _process() -> tuple[np.ndarray, ...]:
    """The taxonomy as the kernel reads it: the base types and their rates per second, each type's children (in
    ``CHILDREN``' order) with their mean count and delay, and each type's propensity delta and conversion draw."""
    children = [CHILDREN.get(code, ()) for code in range(len(EVENT_TYPES))]
    return (np.array([CODE[name] for name in BASE_TYPES], np.int8),
            np.array([EVENT_TYPES[CODE[name]].weekly_rate / WEEK_S for name in BASE_TYPES]),
            np.concatenate([[0], np.cumsum([len(c) for c in children])]).astype(np.int64),
            np.array([c for cs in children for c in cs], np.int8),
            np.array([e.weekly_rate * CHILD_WEEKS for e in EVENT_TYPES]),
            np.array([e.delay_hours * 3600.0 for e in EVENT_TYPES]), DELTA, DRAWS)


_PROCESS = _process()


def oracle_probability(sim: Simulation, cutoff: datetime, horizon_days: int, k: int = 64,
                       seed: int | None = None, state: State | None = None, workers: int | None = None,
                       continued: bool = False) -> np.ndarray:
    """Per profile row: the mean over ``k`` simulated futures of the chance of converting in (T, T+H]
    along each; NaN for profiles that converted before T (no population scores them). ``continued``: the horizon
    lies past the history, where a continuation keeps the base events coming (continuation.py).

    Each future draws the events; the conversion draws along them are integrated out exactly
    (1 - prod(1 - chance)), which removes most of the Monte Carlo noise of counting conversions.
    The futures run in chunks of about LANES_PER_CHUNK lanes, each with its own seed spawned from the
    simulation's, so ``workers`` threads share them and the result does not depend on how many there are
    (default: one per core, up to MAX_WORKERS). Threads, not processes: the compiled futures of kernels.py
    release the GIL, and a thread needs neither a copy of the futures nor a fresh interpreter that imports the
    caller's main module (Dagster's, seconds of imports)."""
    if k < 1:
        raise ValueError(f"k (futures per profile) must be at least 1, got {k}.")
    cfg = sim.config
    state = state or state_at(sim, cutoff)
    eligible, futures = futures_from(sim, state, (cutoff + timedelta(days=horizon_days)).timestamp(), continued)
    copies = _chunk_sizes(k, eligible.size)
    seeds = np.random.SeedSequence([cfg.seed if seed is None else seed, int(state.cutoff), horizon_days]).spawn(
        len(copies))
    workers = min(workers or _default_workers(), len(copies))
    with ThreadPoolExecutor(workers) as pool:
        chances = list(pool.map(futures.conversion_chance, copies, seeds))
    oracle = np.full(sim.traits.baseline.size, np.nan)
    oracle[eligible] = np.sum(chances, axis=0) / k  # summed in chunk order, whatever finished first
    return oracle


def futures_from(sim: Simulation, state: State, horizon: float, continued: bool = False) -> tuple[np.ndarray, Futures]:
    """The rows of the profiles not converted by the cutoff, and what their futures up to ``horizon`` (epoch
    seconds) start from."""
    tr = sim.traits
    eligible = np.nonzero(~state.converted)[0]
    # Pending origins per eligible profile (events come sorted by profile, so their lanes are too), those whose
    # children may still come: about one in seven of the month's.
    pending = state.pending.take(np.nonzero(~state.converted[state.pending.lane]
                                            & live(state.pending, state.cutoff))[0])
    return eligible, Futures(sim.config.behaviour, tr.activity[eligible], tr.baseline[eligible],
                             state.propensity[eligible],
                             np.bincount(np.searchsorted(eligible, pending.lane), minlength=eligible.size), pending,
                             state.cutoff, horizon if continued else min(horizon, sim.config.end.timestamp()), horizon)


def _chunk_sizes(k: int, profiles: int) -> list[int]:
    """Futures per chunk: at most about LANES_PER_CHUNK lanes each, in a multiple of CHUNKS_MULTIPLE chunks of
    near-equal size (while there are futures to split)."""
    chunks = -(-k * max(profiles, 1) // LANES_PER_CHUNK)
    chunks = min(k, -(-chunks // CHUNKS_MULTIPLE) * CHUNKS_MULTIPLE)
    return [k // chunks + (i < k % chunks) for i in range(chunks)]


def oracle_frame(sim: Simulation, cutoff: datetime, horizon_days: int, k: int = 64,
                 state: State | None = None) -> pl.DataFrame:
    """Per profile at ``cutoff``: the latent state, the oracle probability and the realised outcome. Given the
    ``state`` at ``cutoff``, ``sim`` needs no events."""
    state = state or state_at(sim, cutoff)
    end = cutoff + timedelta(days=horizon_days)
    conv = sim.truth["conversion_time"]
    return pl.DataFrame({
        "profile_index": sim.truth["profile_index"], "userid": sim.truth["userid"],
        "cutoff": pl.repeat(cutoff, sim.truth.height, dtype=pl.Datetime("us", "UTC"), eager=True),
        "horizon_days": pl.repeat(horizon_days, sim.truth.height, dtype=pl.Int32, eager=True),
        "latent_propensity_at_cutoff": state.propensity, "converted_before_cutoff": state.converted,
        "pending_events": np.bincount(state.pending.lane, minlength=sim.truth.height),
        "oracle_probability": oracle_probability(sim, cutoff, horizon_days, k, state=state),
        "converted_in_horizon": ((conv > cutoff) & (conv <= end)).fill_null(False),
    })


