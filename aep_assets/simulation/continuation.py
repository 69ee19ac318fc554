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
from .engine import CONVERSION_LAG_S, Events, base_events, descendants, walk
from .oracle import state_at


@dataclass(frozen=True)
class Treatment:
    """A planted campaign effect over (start, start + window]. Uniform: the campaign converts ``uplift`` x
    (treated members) profiles that would not have converted on their own, spread evenly over the window.
    Per member (``lift`` and ``damp``, aligned with ``rows``; see campaign.py): it converts each member who would
    not have converted with chance ``lift``, and cancels each member's own conversion with chance ``damp``."""

    rows: np.ndarray  # profile rows (positions in ``Simulation.profiles``) of the treated members
    uplift: float
    start: datetime  # the activation
    window: timedelta
    lift: np.ndarray | None = None
    damp: np.ndarray | None = None

    def share_within(self, t0: float, t1: float) -> float:
        """The part of the window inside (t0, t1]."""
        lo, hi = max(t0, self.start.timestamp()), min(t1, (self.start + self.window).timestamp())
        return max(hi - lo, 0.0) / self.window.total_seconds()


@dataclass
class Continuation:
    simulation: Simulation  # the whole simulation, history and the new period
    new_events: pl.DataFrame  # only the events of the new period, in the frame of ``Simulation.events``
    start: datetime
    end: datetime

    treated_conversions: int = 0  # conversions the planted campaign effect caused in the period
    prevented_conversions: int = 0  # members' own conversions it cancelled (do-not-disturbs)

    @property
    def changed_profiles(self) -> int:
        return self.new_events["profile_index"].n_unique()


def continue_simulation(sim: Simulation, period: timedelta, *, share: float = 1.0, seed: int | None = None,
                        treatment: Treatment | None = None) -> Continuation:
    """Events in (until, until + period] for every profile, or for a random ``share`` of them (the
    others stay quiet for the period: nothing happens to them). A ``treatment`` adds the conversions a
    campaign causes among its members."""
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
    prevented = _cancelled_conversions(rng, treatment, done.converted_at)
    caused = _campaign_conversions(rng, treatment, done.converted_at, state.converted, t0, t1)
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
    return Continuation(replace(sim, events=events, truth=truth, until=end), new_events, start, end, caused,
                        prevented)


def _cancelled_conversions(rng: np.random.Generator, treatment: Treatment | None, converted_at: np.ndarray) -> int:
    """Cancel, in place in ``converted_at``, the members' own conversions inside the treatment's window, each with
    its member's ``damp``."""
    if treatment is None or treatment.damp is None or not treatment.rows.size:
        return 0
    lo, hi = treatment.start.timestamp(), (treatment.start + treatment.window).timestamp()
    at = converted_at[treatment.rows]
    inside = ~np.isnan(at) & (at > lo) & (at <= hi)
    hit = inside & (rng.random(treatment.rows.size) < treatment.damp)
    converted_at[treatment.rows[hit]] = np.nan
    return int(hit.sum())


def _campaign_conversions(rng: np.random.Generator, treatment: Treatment | None, converted_at: np.ndarray,
                          converted_before: np.ndarray, t0: float, t1: float) -> int:
    """Convert, in place in ``converted_at``, treated members who did not convert on their own in (t0, t1]:
    as many in expectation as the treatment's uplift times its members, times the window's share of the
    period. Drawn among those who would not convert anyway, so the true effect on the treated members'
    conversion rate is exactly the uplift, whatever their own rate."""
    if treatment is None or treatment.uplift <= 0 or not treatment.rows.size:
        return 0
    part = treatment.share_within(t0, t1)
    open_ = ~converted_before[treatment.rows] & np.isnan(converted_at[treatment.rows])
    pool = treatment.rows[open_]
    if part <= 0 or not pool.size:
        return 0
    if treatment.lift is None:
        chance = min(1.0, treatment.uplift * part * treatment.rows.size / pool.size)
    else:  # per member; a window split over periods gets its share of the chance in each
        chance = np.minimum(1.0, treatment.lift[open_] * part)
    hit = pool[rng.random(pool.size) < chance]
    lo = max(t0, treatment.start.timestamp())
    hi = min(t1, (treatment.start + treatment.window).timestamp()) - CONVERSION_LAG_S
    converted_at[hit] = np.floor(rng.uniform(lo, max(hi, lo + 1), size=hit.size))
    return int(hit.size)
