"""The behaviour model: Poisson event cascades and a cumulative-propensity conversion draw.

Vectorised with numpy: events are generated per type for all profiles at once, and the
propensity walk loops over "the k-th event of each profile" (a few hundred steps), never per event.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from .identity import ecid, synthetic_email
from .profiles import make_profiles
from .taxonomy import (
    BASE_TYPES,
    CODE,
    CONVERSION_EVENT,
    DEPENDENCIES,
    EVENT_TYPES,
    NAMES,
    triggers_conversion_draw,
)

INITIAL_PROPENSITY = 0.001
CONVERSION_LAG_S = 60.0


def _midnight_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SimulationConfig:
    n_profiles: int = 100_000
    seed: int = 42
    as_of: datetime = field(default_factory=_midnight_today)
    weeks: int = 10  # base events fall in [as_of - (weeks + 2) weeks, as_of - 2 weeks], as in the notebooks
    first_profile_index: int = 0

    def __post_init__(self) -> None:
        if self.n_profiles < 1:
            raise ValueError(f"n_profiles must be at least 1, got {self.n_profiles}.")
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC), e.g. datetime(2026, 1, 1, tzinfo=UTC).")

    @property
    def start(self) -> datetime:
        return self.as_of - timedelta(weeks=self.weeks + 2)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(weeks=self.weeks)


@dataclass
class Simulation:
    """``profiles`` and ``events`` are what AEP receives; ``truth`` never leaves the simulator."""

    config: SimulationConfig
    profiles: pl.DataFrame  # profile_index, userid (ECID), attributes
    events: pl.DataFrame  # profile_index, event_type, timestamp (UTC), latent propensity after the event
    truth: pl.DataFrame  # profile_index, userid, latent_propensity, converted, conversion_time, n_events


def _cascade(rng: np.random.Generator, cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = cfg.n_profiles
    start = cfg.start.timestamp()
    span = (cfg.end - cfg.start).total_seconds()
    by_type: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in NAMES}
    for name in BASE_TYPES:
        counts = rng.poisson(EVENT_TYPES[CODE[name]].weekly_rate * cfg.weeks, size=n)
        users = np.repeat(np.arange(n, dtype=np.int64), counts)
        times = start + np.floor(rng.uniform(0, span, size=users.size))
        by_type[name].append((users, times))
    for origin, children in DEPENDENCIES:
        if not by_type[origin]:
            continue
        o_users = np.concatenate([u for u, _ in by_type[origin]])
        o_times = np.concatenate([t for _, t in by_type[origin]])
        for child in children:
            spec = EVENT_TYPES[CODE[child]]
            counts = rng.poisson(spec.weekly_rate * cfg.weeks, size=o_users.size)
            users = np.repeat(o_users, counts)
            times = np.repeat(o_times, counts)
            if spec.delay_hours:
                times = times + rng.exponential(spec.delay_hours * 3600.0, size=users.size)
            by_type[child].append((users, times))  # appended: the notebooks' overwrite is the defect fixed
    users = np.concatenate([u for name in NAMES for u, _ in by_type[name]])
    times = np.concatenate([t for name in NAMES for _, t in by_type[name]])
    types = np.concatenate([np.full(u.size, CODE[name], dtype=np.int8) for name in NAMES for u, _ in by_type[name]])
    return users, types, times


def _convert(rng: np.random.Generator, n: int, users: np.ndarray, types: np.ndarray, times: np.ndarray):
    """Walk each profile's events in time order: p += delta (clipped), then maybe convert."""
    order = np.lexsort((times, users))
    users, types, times = users[order], types[order], times[order]
    delta = np.array([e.propensity_delta for e in EVENT_TYPES])
    draws = np.array([triggers_conversion_draw(e.name) for e in EVENT_TYPES])
    first = np.searchsorted(users, np.arange(n))
    pos = np.arange(users.size) - first[users]
    by_pos = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[by_pos], np.arange(pos.max() + 2 if pos.size else 1))
    p = np.full(n, INITIAL_PROPENSITY)
    converted_at = np.full(n, np.nan)
    after = np.empty(users.size)
    for k in range(len(bounds) - 1):
        idx = by_pos[bounds[k]:bounds[k + 1]]
        u = users[idx]
        p[u] = np.clip(p[u] + delta[types[idx]], 0.0, 1.0)
        after[idx] = p[u]
        eligible = draws[types[idx]] & np.isnan(converted_at[u])
        hit = eligible.copy()
        hit[eligible] = rng.random(int(eligible.sum())) < p[u[eligible]]
        converted_at[u[hit]] = times[idx[hit]] + CONVERSION_LAG_S
    return users, types, times, after, p, converted_at


def simulate(config: SimulationConfig) -> Simulation:
    rng = np.random.default_rng(config.seed)
    n = config.n_profiles
    users, types, times = _cascade(rng, config)
    users, types, times, after, final_p, converted_at = _convert(rng, n, users, types, times)
    conv_users = np.nonzero(~np.isnan(converted_at))[0]
    users = np.concatenate([users, conv_users])
    types = np.concatenate([types, np.full(conv_users.size, CODE[CONVERSION_EVENT], dtype=np.int8)])
    times = np.concatenate([times, converted_at[conv_users]])
    after = np.concatenate([after, final_p[conv_users] * np.nan])
    order = np.lexsort((times, users))

    index = np.arange(config.first_profile_index, config.first_profile_index + n)
    ecids = [ecid(synthetic_email(int(i))) for i in index]  # one C hash per profile
    profiles = make_profiles(rng, index, ecids, config.as_of)
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
        "n_events": n_events,
    }).with_columns(pl.when(pl.col("converted")).then(pl.col("conversion_time")).alias("conversion_time"))
    return Simulation(config, profiles, events, truth)
