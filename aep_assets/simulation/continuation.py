"""Continue a simulation past the point where it stopped: the new events that land in AEP later.

The state at the stop (latent propensity, conversions, events whose children may still land) comes
from ``oracle.state_at``, so a continued profile behaves exactly as its history would have gone on.
Base events keep their rates past the history's window: in the world the simulation stands for,
customers keep browsing and receiving emails.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from .behaviour import Simulation, event_frame
from .engine import Events, base_events, descendants, walk
from .oracle import state_at


@dataclass
class Continuation:
    simulation: Simulation  # the whole simulation, history and the new period
    new_events: pl.DataFrame  # only the events of the new period, in the frame of ``Simulation.events``
    start: datetime
    end: datetime

    @property
    def changed_profiles(self) -> int:
        return self.new_events["profile_index"].n_unique()


def continue_simulation(sim: Simulation, period: timedelta, *, share: float = 1.0,
                        seed: int | None = None) -> Continuation:
    """Events in (until, until + period] for every profile, or for a random ``share`` of them (the
    others stay quiet for the period: nothing happens to them)."""
    if period <= timedelta(0):
        raise ValueError(f"period must be positive, got {period}; e.g. timedelta(days=1).")
    if not 0 < share <= 1:
        raise ValueError(f"share = {share} must be in (0, 1]: the share of profiles active in the new period.")
    start, end = sim.until, sim.until + period
    t0, t1 = start.timestamp(), end.timestamp()
    state = state_at(sim, start)
    rng = np.random.default_rng([sim.config.seed if seed is None else seed, int(t0), int(t1)])
    n = sim.traits.baseline.size
    active = rng.random(n) < share
    pending = state.pending.take(np.nonzero(active[state.pending.lane])[0])
    activity = np.where(active, sim.traits.activity, 0.0)
    fresh = base_events(rng, activity, t0, t1)
    new = Events.concat([descendants(rng, pending, end=t1, after=t0), fresh, descendants(rng, fresh, end=t1)])
    new = new.sorted()
    done = walk(rng, sim.config.behaviour, new, baseline=sim.traits.baseline, propensity=state.propensity,
                start=t0, end=t1, converted=state.converted)
    first = sim.config.first_profile_index
    new_events = event_frame(new, done, first)
    events = pl.concat([sim.events, new_events]).sort(["profile_index", "timestamp"], maintain_order=True)
    converted_now = ~np.isnan(done.converted_at)
    conversion_us = np.where(converted_now, done.converted_at * 1e6, 0).astype(np.int64)
    counts = np.bincount(new_events["profile_index"].to_numpy() - first, minlength=n)
    truth = sim.truth.with_columns(
        pl.Series("latent_propensity", done.propensity_end),
        (pl.col("converted") | pl.Series(converted_now)).alias("converted"),
        pl.when(pl.Series(converted_now)).then(pl.Series(conversion_us).cast(pl.Datetime("us", "UTC")))
        .otherwise(pl.col("conversion_time")).alias("conversion_time"),
        (pl.col("n_events") + pl.Series(counts)).alias("n_events"),
    )
    return Continuation(replace(sim, events=events, truth=truth, until=end), new_events, start, end)
