"""Can this model be trained well? Said before it trains, naming what is short and how to fix it.

Customer AI's failure kinds are the guide: too few goal or non-goal profiles, a history shorter than
the lookback plus the outcome window, no recent events before a cutoff, a goal that never or always
occurs, an identity that is mostly NULL, a feature event that never occurs.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from ..aep import AEPClient
from ..ml.design import TemporalSplit
from ..ml.feature_set import LABEL, FeatureSet
from .feature_builds import format_cutoff, render
from .feature_sql import count_where, source_events_cte
from .sources import Sources
from .spec import ModelSpec, Sufficiency, parse_time


@dataclass
class SufficiencyResult:
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def metadata(self) -> dict:
        return {"problems": "; ".join(self.problems) or "none", "facts": json.dumps(self.facts, default=str)}


def source_stats_sql(fs: FeatureSet, sources: Sources, design: TemporalSplit, recent_days: int) -> str:
    t1, t2 = (f"TIMESTAMP '{format_cutoff(t)}'" for t in (design.train_cutoff, design.test_cutoff))
    flags = "".join(f",\n    {count_where(f'e{i} = 1 AND timestamp < {t1}')} AS e{i}" for i in range(len(fs.events)))
    recent = f"INTERVAL {int(recent_days)} DAYS"
    return (f"WITH {source_events_cte(fs, sources.event_tables)}\n"
            "SELECT\n    COUNT(*) AS events,\n"
            f"    {count_where('profile_id IS NULL')} AS null_identity,\n"
            "    MIN(timestamp) AS first_event,\n    MAX(timestamp) AS last_event,\n"
            f"    {count_where(f'timestamp < {t1} AND timestamp >= {t1} - {recent}')} AS recent_train,\n"
            f"    {count_where(f'timestamp < {t2} AND timestamp >= {t2} - {recent}')} AS recent_test"
            f"{flags}\nFROM source_events")


def check_source(client: AEPClient, spec: ModelSpec, fs: FeatureSet, sources: Sources,
                 design: TemporalSplit) -> SufficiencyResult:
    floor = spec.sufficiency
    sql = render(source_stats_sql(fs, sources, design, floor.recent_days), {"tenant_id": client.schemas.tenant_id()})
    stats = client.query.select(sql)[0]
    result = SufficiencyResult(facts={k: stats[k] for k in ("events", "null_identity", "first_event", "last_event",
                                                             "recent_train", "recent_test")})
    events = int(stats["events"] or 0)
    if events == 0:
        result.problems.append(f"events.datasets {spec.events.datasets or 'of the simulation'} hold no events; "
                               "name the Experience Event datasets your data lands in")
        return result
    null_share = int(stats["null_identity"] or 0) / events
    result.facts["null_identity_share"] = round(null_share, 4)
    if null_share > floor.max_null_identity_share:
        result.problems.append(
            f"events.identity {spec.events.identity!r} is NULL on {null_share:.0%} of events (at most "
            f"{floor.max_null_identity_share:.0%} allowed); point it at the field that holds the identity, e.g. "
            "identityMap['ECID'][0].id or _{tenant}.userid")
    lookback = max(fs.windows_days, default=0)
    first, last = _utc(stats["first_event"]), _utc(stats["last_event"])
    if first > design.train_cutoff - timedelta(days=lookback):
        result.problems.append(
            f"the history starts {first:%Y-%m-%d}, less than the longest window ({lookback} days) before "
            f"cutoffs.train {design.train_cutoff:%Y-%m-%d}; move cutoffs.train to "
            f"{first + timedelta(days=lookback):%Y-%m-%d} or later, or shorten features.windows_days")
    window_end = design.test_cutoff + timedelta(days=design.horizon_days)
    if last < window_end - timedelta(days=1):
        result.problems.append(
            f"the history ends {last:%Y-%m-%d}, before the test outcome window closes {window_end:%Y-%m-%d} "
            f"(cutoffs.test + goal.outcome_days); move cutoffs.test to "
            f"{last - timedelta(days=design.horizon_days):%Y-%m-%d} or earlier")
    for split, cutoff in (("train", design.train_cutoff), ("test", design.test_cutoff)):
        if int(stats[f"recent_{split}"] or 0) == 0:
            result.problems.append(f"no events in the {floor.recent_days} days before cutoffs.{split} "
                                   f"{cutoff:%Y-%m-%d}; move the cutoff to where the data is")
    never = [e.name for i, e in enumerate(fs.events) if int(stats[f"e{i}"] or 0) == 0]
    if never:
        result.problems.append(f"feature events {never} never occur before cutoffs.train; fix their condition in "
                               "features.events or remove them")
    return result


def check_training_rows(frame: pl.DataFrame, floor: Sufficiency) -> SufficiencyResult:
    """Goal and non-goal profiles per split, against the configured floors."""
    result = SufficiencyResult()
    for split in ("train", "test"):
        rows = frame.filter(pl.col("split") == split)
        goals = int(rows[LABEL].sum()) if rows.height else 0
        others = rows.height - goals
        result.facts[f"{split}_goal_profiles"], result.facts[f"{split}_non_goal_profiles"] = goals, others
        if rows.height and goals == rows.height:
            result.problems.append(f"every {split} profile reaches the goal: the goal condition is too broad or "
                                   "eligibility lets in only converters")
        elif goals == 0:
            result.problems.append(f"no {split} profile reaches the goal in its outcome window: check goal.condition "
                                   "or lengthen goal.outcome_days")
        elif goals < floor.min_goal_profiles:
            result.problems.append(f"{goals} {split} profiles reach the goal, fewer than "
                                   f"sufficiency.min_goal_profiles ({floor.min_goal_profiles}); lengthen "
                                   "goal.outcome_days, add event datasets, or lower the floor")
        if others < floor.min_non_goal_profiles:
            result.problems.append(f"{others} {split} profiles do not reach the goal, fewer than "
                                   f"sufficiency.min_non_goal_profiles ({floor.min_non_goal_profiles})")
    return result


def _utc(value) -> datetime:
    return value if isinstance(value, datetime) and value.tzinfo else parse_time("timestamp", str(value))
