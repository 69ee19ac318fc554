"""The oracle: P(conversion in (T, T+H] | the true state at T), by simulating K futures from that state.

The state of a profile at T is its latent propensity at T, whether it has converted, its traits, and
the events before T whose children may still land after T (an email opened an hour before T may
still be clicked). Each future redraws those children (exact, by Poisson thinning), draws fresh base
events in (T, T+H], cascades them, and walks the propensity forward. No model can beat this on
average; the trained model is measured against it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from .behaviour import Simulation
from .engine import CHILDREN, Events, base_events, descendants, walk
from .taxonomy import CODE, CONVERSION_EVENT, EVENT_TYPES

PENDING_LOOKBACK_S = 30 * max(e.delay_hours for e in EVENT_TYPES) * 3600.0  # exp(-30): nothing pends longer
LANES_PER_CHUNK = 1_000_000


@dataclass(frozen=True)
class State:
    cutoff: float  # epoch seconds
    propensity: np.ndarray  # per profile row, at the cutoff
    converted: np.ndarray  # converted before the cutoff
    pending: Events  # recent origin events before the cutoff; lane = profile row


def state_at(sim: Simulation, cutoff: datetime) -> State:
    """The true state of every profile at ``cutoff``, from the realised history."""
    t = cutoff.timestamp()
    model, tr = sim.config.behaviour, sim.traits
    first = sim.profiles["profile_index"].min()
    ev = sim.events.filter(pl.col("timestamp") < cutoff)
    rows = (ev["profile_index"] - first).to_numpy()
    codes = ev["event_type"].to_physical().to_numpy().astype(np.int8)
    times = ev["timestamp"].dt.epoch("us").to_numpy() / 1e6
    converted = np.zeros(tr.baseline.size, bool)
    converted[rows[codes == CODE[CONVERSION_EVENT]]] = True
    latent = ev["latent_propensity"].to_numpy()
    has_p = ~np.isnan(latent)
    # Events are sorted by (profile, time): the last one with a propensity is each profile's latest state.
    last = np.full(tr.baseline.size, -1)
    last[rows[has_p]] = np.nonzero(has_p)[0]
    p = tr.baseline.copy()
    seen = last >= 0
    since = t - times[last[seen]]
    p[seen] = tr.baseline[seen] + (latent[last[seen]] - tr.baseline[seen]) * model.decay(since)
    recent = (times > t - PENDING_LOOKBACK_S) & np.isin(codes, list(CHILDREN))
    pending = Events(rows[recent].astype(np.int64), codes[recent], times[recent])
    return State(t, p, converted, pending)


def oracle_probability(sim: Simulation, cutoff: datetime, horizon_days: int, k: int = 64,
                       seed: int | None = None, state: State | None = None) -> np.ndarray:
    """Per profile row: the mean over ``k`` simulated futures of the chance of converting in (T, T+H]
    along each; NaN for profiles that converted before T (no population scores them).

    Each future draws the events; the conversion draws along them are integrated out exactly
    (1 - prod(1 - chance)), which removes most of the Monte Carlo noise of counting conversions."""
    if k < 1:
        raise ValueError(f"k (futures per profile) must be at least 1, got {k}.")
    cfg, tr = sim.config, sim.traits
    state = state or state_at(sim, cutoff)
    t0 = state.cutoff
    t1 = (cutoff + timedelta(days=horizon_days)).timestamp()
    base_hi = min(t1, cfg.end.timestamp())  # base events only happen inside the model's window
    rng = np.random.default_rng([cfg.seed if seed is None else seed, int(t0), horizon_days])
    eligible = np.nonzero(~state.converted)[0]
    hits = np.zeros(tr.baseline.size)
    # Pending origins per eligible profile, as slices (events come sorted by profile, so lanes are too).
    pending = state.pending.take(np.nonzero(~state.converted[state.pending.lane])[0])
    lo = np.searchsorted(pending.lane, eligible)
    hi = np.searchsorted(pending.lane, eligible, side="right")
    per_chunk = max(1, LANES_PER_CHUNK // max(eligible.size, 1))
    counts = hi - lo
    # Index into ``pending`` of each eligible profile's pending origins, profile by profile.
    src = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    for k0 in range(0, k, per_chunk):
        copies = min(per_chunk, k - k0)
        owner = np.tile(eligible, copies)  # lane j follows profile row owner[j]
        lane_of_pending = np.repeat(np.arange(copies * eligible.size), np.tile(counts, copies))
        picked = np.tile(src, copies)
        origins = Events(lane_of_pending, pending.code[picked], pending.time[picked])
        fresh = base_events(rng, tr.activity[owner], t0, base_hi)
        future = Events.concat([descendants(rng, origins, end=t1, after=t0), fresh,
                                descendants(rng, fresh, end=t1)]).sorted()
        done = walk(rng, cfg.behaviour, future, baseline=tr.baseline[owner], propensity=state.propensity[owner],
                    start=t0, end=t1)
        hits[eligible] += done.conversion_chance.reshape(copies, eligible.size).sum(axis=0)
    oracle = hits / k
    oracle[state.converted] = np.nan
    return oracle


def oracle_frame(sim: Simulation, cutoff: datetime, horizon_days: int, k: int = 64) -> pl.DataFrame:
    """Per profile at ``cutoff``: the latent state, the oracle probability and the realised outcome."""
    state = state_at(sim, cutoff)
    end = cutoff + timedelta(days=horizon_days)
    conv = sim.truth["conversion_time"]
    return pl.DataFrame({
        "profile_index": sim.truth["profile_index"], "userid": sim.truth["userid"],
        "cutoff": pl.Series([cutoff] * sim.truth.height, dtype=pl.Datetime("us", "UTC")),
        "horizon_days": pl.Series([horizon_days] * sim.truth.height, dtype=pl.Int32),
        "latent_propensity_at_cutoff": state.propensity, "converted_before_cutoff": state.converted,
        "pending_events": np.bincount(state.pending.lane, minlength=sim.truth.height),
        "oracle_probability": oracle_probability(sim, cutoff, horizon_days, k, state=state),
        "converted_in_horizon": ((conv > cutoff) & (conv <= end)).fill_null(False),
    })


