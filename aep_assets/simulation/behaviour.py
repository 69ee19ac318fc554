"""A simulation: profiles, their event history up to ``as_of``, and the ground truth kept out of AEP.

Vectorised with numpy (see engine.py): events are generated per type for all profiles at once, and the
propensity walk loops over "the k-th event of each profile" (a few hundred steps), never per event.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from .engine import Events, base_events, descendants, walk
from .identity import ecid, synthetic_email
from .model import BehaviourModel, Traits, get_model, traits
from .profiles import make_profiles
from .taxonomy import CODE, CONVERSION_EVENT, NAMES


def _midnight_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SimulationConfig:
    n_profiles: int = 100_000
    seed: int = 42
    as_of: datetime = field(default_factory=_midnight_today)
    model: str = "extended"  # or "adobe", the notebooks' exact behaviour model
    first_profile_index: int = 0

    def __post_init__(self) -> None:
        if self.n_profiles < 1:
            raise ValueError(f"n_profiles must be at least 1, got {self.n_profiles}.")
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC), e.g. datetime(2026, 1, 1, tzinfo=UTC).")
        get_model(self.model)

    @property
    def behaviour(self) -> BehaviourModel:
        return get_model(self.model)

    @property
    def start(self) -> datetime:
        """First base event; the adobe model's window is [as_of - 12 weeks, as_of - 2 weeks], as in the notebooks."""
        return self.as_of - timedelta(weeks=self.behaviour.weeks + self.behaviour.gap_weeks)

    @property
    def end(self) -> datetime:
        """Last base event. Caused events may follow it, but never pass ``as_of``."""
        return self.start + timedelta(weeks=self.behaviour.weeks)


@dataclass
class Simulation:
    """``profiles`` and ``events`` are what AEP receives; ``truth`` and ``traits`` never leave the simulator."""

    config: SimulationConfig
    profiles: pl.DataFrame  # profile_index, userid (ECID), attributes
    events: pl.DataFrame  # profile_index, event_type, timestamp (UTC), latent propensity after the event
    truth: pl.DataFrame  # profile_index, userid, latent_propensity, converted, conversion_time, n_events
    traits: Traits  # per profile row, in the order of ``profiles``


def _history(rng: np.random.Generator, cfg: SimulationConfig, tr: Traits):
    start, base_end, as_of = cfg.start.timestamp(), cfg.end.timestamp(), cfg.as_of.timestamp()
    base = base_events(rng, tr.activity, start, base_end)
    events = Events.concat([base, descendants(rng, base, end=as_of)]).sorted()
    done = walk(rng, cfg.behaviour, events, baseline=tr.baseline, propensity=tr.baseline, start=start, end=as_of)
    return events, done


def simulate(config: SimulationConfig) -> Simulation:
    rng = np.random.default_rng(config.seed)
    n = config.n_profiles
    index = np.arange(config.first_profile_index, config.first_profile_index + n)
    ecids = [ecid(synthetic_email(int(i))) for i in index]  # one C hash per profile
    profiles = make_profiles(rng, index, ecids, config.as_of)
    tr = traits(config.behaviour, profiles, config.as_of.year)
    history, done = _history(rng, config, tr)
    users, types, times, after = history.lane, history.code, history.time, done.propensity_after
    final_p, converted_at = done.propensity_end, done.converted_at
    conv_users = np.nonzero(~np.isnan(converted_at))[0]
    users = np.concatenate([users, conv_users])
    types = np.concatenate([types, np.full(conv_users.size, CODE[CONVERSION_EVENT], dtype=np.int8)])
    times = np.concatenate([times, converted_at[conv_users]])
    after = np.concatenate([after, final_p[conv_users] * np.nan])
    order = np.lexsort((times, users))
    events = pl.DataFrame({
        "profile_index": users[order] + config.first_profile_index,
        "event_type": pl.Series(types[order]).replace_strict(dict(enumerate(NAMES)), return_dtype=pl.Enum(NAMES)),
        "timestamp": pl.Series((times[order] * 1e6).astype(np.int64)).cast(pl.Datetime("us", "UTC")),
        "latent_propensity": after[order],
    })
    n_events = np.bincount(users, minlength=n)
    truth = pl.DataFrame({
        "profile_index": index, "userid": ecids, "latent_propensity": final_p,
        "converted": ~np.isnan(converted_at),
        "conversion_time": pl.Series(np.where(np.isnan(converted_at), 0, converted_at * 1e6).astype(np.int64))
        .cast(pl.Datetime("us", "UTC")),
        "n_events": n_events, "activity": tr.activity, "baseline_propensity": tr.baseline,
    }).with_columns(pl.when(pl.col("converted")).then(pl.col("conversion_time")).alias("conversion_time"))
    return Simulation(config, profiles, events, truth, tr)
