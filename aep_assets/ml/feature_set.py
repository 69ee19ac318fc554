"""A model's features, resolved from its definition and fixed per model version.

``pipeline/feature_sql.py`` turns a ``FeatureSet`` into Query Service SQL. ``reference_features``
here is its Python twin: from per-event match flags (``e0``, ``e1``, ... as the engine evaluated each
feature event's condition on each row) and values, it recomputes the aggregations independently of
the SQL, so the no_leakage check and the tests can compare the two.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

ID = "profile_id"  # the identity value as the source holds it
LABEL = "goal_occurred"  # the goal occurred in (T, T + outcome_days]; for kind churn: no goal event did
ELIGIBLE = "eligible"  # 1 when the profile is in the model's population at its cutoff
GOAL_VALUE = "goal_value"  # kind value: the sum of goal.value over the outcome window's goal events
PREDICTED_VALUE = "predicted_value"  # kind value: its forecast, P(some) * E[value | some]
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class EventFeature:
    """Events matching ``condition``: counted over all history and each window, the minutes since the last
    (``recency``) and the first (``first``) one, and the sum of ``value`` when given."""

    name: str
    condition: str
    value: str | None = None
    recency: str | None = None  # the recency feature's name, or None for none
    first: str | None = None


@dataclass(frozen=True)
class AttributeFeature:
    """A profile attribute: a number as it is, a category coded by its position in ``categories``, the days
    since a date (``days_since``) or the years since a year (``years_since``), both as of the cutoff."""

    name: str
    field: str
    kind: str = "number"
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class RatioFeature:
    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class FeatureSet:
    identity: str  # SQL over an event row
    goal: str  # SQL boolean over an event row
    events: tuple[EventFeature, ...]
    windows_days: tuple[int, ...] = ()
    ratios: tuple[RatioFeature, ...] = ()
    attributes: tuple[AttributeFeature, ...] = ()
    profile_identity: str | None = None  # SQL over a profile row; None without a profile dataset
    exclude_prior_goal: bool = True
    eligibility_condition: str | None = None
    active_within_days: int | None = None
    goal_kind: str = "conversion"  # conversion | churn | value (spec.Goal)
    goal_value: str | None = None  # SQL number summed over the outcome window's goal events (kind value)
    derived: bool = False  # the feature events were found in the data, not written in the YAML
    meta: dict = field(default_factory=dict, compare=False)  # e.g. how each derived event type was chosen

    def __post_init__(self) -> None:
        names = self.names
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names {duplicated} are used twice; give each feature event, ratio and "
                             "attribute its own name.")
        known = set(self.count_names)
        for r in self.ratios:
            for part in (r.numerator, r.denominator):
                if part not in known:
                    raise ValueError(f"ratio {r.name!r} refers to {part!r}, which is not a count feature; use one "
                                     f"of {sorted(known)[:8]}...")

    @property
    def count_names(self) -> tuple[str, ...]:
        return tuple(n for e in self.events for n in (e.name, *(f"{e.name}_{d}d" for d in self.windows_days)))

    def value_names(self, e: EventFeature) -> tuple[str, ...]:
        return (f"{e.name}_value", *(f"{e.name}_value_{d}d" for d in self.windows_days)) if e.value else ()

    @property
    def event_names(self) -> tuple[str, ...]:
        """Every feature computed from events, in column order."""
        per_event = [n for e in self.events for n in (e.name, *(f"{e.name}_{d}d" for d in self.windows_days),
                                                      *self.value_names(e))]
        return (*per_event, *(e.recency for e in self.events if e.recency),
                *(e.first for e in self.events if e.first), *(r.name for r in self.ratios))

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.event_names, *(a.name for a in self.attributes))

    @property
    def nullable(self) -> frozenset[str]:
        """Features that are NULL for "never" or "no denominator", never 0."""
        return frozenset([*(e.recency for e in self.events if e.recency), *(e.first for e in self.events if e.first),
                          *(r.name for r in self.ratios), *(a.name for a in self.attributes)])

    @property
    def clock(self) -> dict[str, float]:
        """Time-since features, which grow with the clock alone, and their units per day."""
        per_day = {"days_since": 1.0, "years_since": 1 / 365.25}
        return {**{n: float(MINUTES_PER_DAY) for e in self.events for n in (e.recency, e.first) if n},
                **{a.name: per_day[a.kind] for a in self.attributes if a.kind in per_day}}

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "FeatureSet":
        return FeatureSet(
            **{**data, "events": tuple(EventFeature(**e) for e in data["events"]),
               "windows_days": tuple(data.get("windows_days", ())),
               "ratios": tuple(RatioFeature(**r) for r in data.get("ratios", ())),
               "attributes": tuple(AttributeFeature(**{**a, "categories": tuple(a.get("categories", ()))})
                                   for a in data.get("attributes", ()))})


def feature_matrix(frame: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """Features as float64, one row after another in memory (C order): LightGBM reads rows, and copies any other
    layout before it bins or predicts. Missing recency stays NaN: LightGBM keeps "never" apart from "0 minutes
    ago"."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"The feature frame lacks columns {missing}; it must come from the model's feature SQL.")
    return frame.select([pl.col(c).cast(pl.Float64) for c in features]).to_numpy(order="c")


def reference_features(events: pl.DataFrame, cutoff: datetime, fs: FeatureSet) -> pl.DataFrame:
    """The event features of the generated SQL, from flagged events (profile_id, timestamp, e0.., v0..).

    Only events strictly before ``cutoff`` are read; profiles with none get no row, as in the SQL.
    """
    history = events.filter(pl.col("timestamp") < cutoff)
    minutes = (pl.lit(cutoff) - pl.col("timestamp")).dt.total_microseconds() / 60e6
    aggs = []
    for i, e in enumerate(fs.events):
        hit = pl.col(f"e{i}") == 1
        aggs.append(hit.sum().cast(pl.Int64).alias(e.name))
        aggs += [(hit & (minutes <= d * MINUTES_PER_DAY)).sum().cast(pl.Int64).alias(f"{e.name}_{d}d")
                 for d in fs.windows_days]
        if e.value:
            value = pl.col(f"v{i}").cast(pl.Float64)
            names = fs.value_names(e)
            aggs.append(value.filter(hit).sum().alias(names[0]))
            aggs += [value.filter(hit & (minutes <= d * MINUTES_PER_DAY)).sum().alias(n)
                     for d, n in zip(fs.windows_days, names[1:], strict=True)]
        if e.recency:
            aggs.append(minutes.filter(hit).min().alias(e.recency))
        if e.first:
            aggs.append(minutes.filter(hit).max().alias(e.first))
    out = history.group_by(ID).agg(aggs)
    return out.with_columns([
        pl.when(pl.col(r.denominator) > 0).then(pl.col(r.numerator) / pl.col(r.denominator)).otherwise(None)
        .alias(r.name) for r in fs.ratios])
