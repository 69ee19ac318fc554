"""Feature tables built by Query Service CTAS, versioned by their inputs.

The statements live in ``sql/``; the model's feature CTEs are generated from its definition (see
``feature_sql.py``) and placed where a statement says ``$feature_ctes``. A table's name carries a hash
of its SQL, parameters and the batches it reads, so a re-run over unchanged data finds the table it
made before, and a run over new data makes a new table and drops the model's older ones (only ever
tables this model created).
"""

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..aep import AEPClient
from ..ml.feature_set import GOAL_VALUE, AttributeFeature, EventFeature, FeatureSet, RatioFeature
from .feature_sql import feature_ctes, goal_value_sum, label_columns, quote_string, source_events_cte, tenant_sql
from .ownership import mark_dataset, owner_of, require_owned
from .sources import Sources
from .spec import Attribute, ModelSpec

log = logging.getLogger(__name__)
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
INCLUDES = ("adobe_features", "goals_in_window")  # sql/{name}.sql, inlined where a statement says $name
MAX_CATEGORIES = 20


def load_sql(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the SQL of each asset lives in sql/.")
    return path.read_text()


def compose(name: str, fragments: dict[str, str] | None = None) -> str:
    """The statement of ``sql/{name}.sql`` with the shared subqueries and generated fragments inlined."""
    sql = load_sql(name)
    for include in INCLUDES:  # first, so that an include's own placeholders are filled too
        sql = sql.replace(f"${include}", load_sql(include).strip())
    for key, text in sorted((fragments or {}).items(), key=lambda kv: -len(kv[0])):
        sql = sql.replace(f"${key}", text.strip())
    return sql


def render(sql: str, params: dict) -> str:
    """What AEP runs after substituting ``queryParameters`` (longest names first)."""
    for key in sorted(params, key=len, reverse=True):
        sql = sql.replace(f"${key}", str(params[key]))
    return sql


def format_cutoff(cutoff: datetime) -> str:
    if cutoff.tzinfo is None:
        raise ValueError(f"cutoff {cutoff.isoformat()} has no timezone; give it in UTC, e.g. 2026-10-29T00:00:00Z.")
    return cutoff.strftime("%Y-%m-%d %H:%M:%S+00:00")


def cutoff_values(cutoffs: dict[str, datetime]) -> str:
    """The ``$cutoffs`` VALUES rows: (TIMESTAMP 'T', 'split') per split."""
    if not cutoffs:
        raise ValueError("At least one cutoff is needed.")
    return ", ".join(f"(TIMESTAMP '{format_cutoff(t)}', '{split}')" for split, t in cutoffs.items())


def _feature_name(text: str) -> str:
    """A column name from an eventType such as ``commerce.productViews``: ``commerce_productViews``."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "event"
    return name if name[0].isalpha() else f"e_{name}"


def _attribute(a: Attribute | str) -> Attribute:
    return Attribute(name=_feature_name(a), field=a) if isinstance(a, str) else a


def event_type_counts(client: AEPClient, tables: list[str], before: datetime, limit: int) -> list[dict]:
    """The most frequent eventType values before ``before``, over every events table."""
    union = " UNION ALL ".join(f"SELECT eventType, timestamp FROM {t}" for t in tables)
    return client.query.select(
        f"SELECT eventType, COUNT(*) AS events FROM ({union}) AS e WHERE timestamp < TIMESTAMP "
        f"'{format_cutoff(before)}' AND eventType IS NOT NULL GROUP BY eventType ORDER BY events DESC, eventType "
        f"LIMIT {int(limit)}")


def category_values(client: AEPClient, table: str, field_sql: str, limit: int = MAX_CATEGORIES) -> list[str]:
    rows = client.query.select(f"SELECT {field_sql} AS value, COUNT(*) AS n FROM {table} WHERE {field_sql} IS NOT "
                               f"NULL GROUP BY {field_sql} ORDER BY n DESC LIMIT {int(limit)}")
    return [str(r["value"]) for r in rows]


def resolve_feature_set(client: AEPClient, spec: ModelSpec, sources: Sources, train_cutoff: datetime) -> FeatureSet:
    """The model's features: as its YAML lists them, or found in the data (the most frequent event types
    before the train cutoff, and the most frequent values of each category attribute)."""
    f, meta = spec.features, {}
    if f.events is not None:
        events = tuple(EventFeature(e.name, e.condition, e.value,
                                    _named(e.recency, f"minutes_since_{e.name}"),
                                    _named(e.first, f"minutes_since_first_{e.name}")) for e in f.events)
    else:
        counts = event_type_counts(client, sources.event_tables, train_cutoff, f.top_event_types)
        if not counts:
            raise ValueError(f"model {spec.name!r}: no events with an eventType before the train cutoff "
                             f"{train_cutoff:%Y-%m-%d} in {sources.event_tables}, so no features can be derived; "
                             "move cutoffs.train later or list features.events.")
        events = tuple(EventFeature(_feature_name(r["eventType"]), f"eventType = {quote_string(r['eventType'])}",
                                    recency=f"minutes_since_{_feature_name(r['eventType'])}",
                                    first=f"minutes_since_first_{_feature_name(r['eventType'])}") for r in counts)
        meta["derived_event_types"] = {r["eventType"]: int(r["events"]) for r in counts}
    attributes = []
    for a in map(_attribute, spec.profile.attributes):
        categories = tuple(a.categories or ())
        if a.kind == "category" and a.categories is None:
            categories = tuple(category_values(client, sources.profile_table, tenant_sql(a.field)))
            meta.setdefault("derived_categories", {})[a.name] = list(categories)
        attributes.append(AttributeFeature(a.name, a.field, a.kind, categories))
    return FeatureSet(
        identity=spec.events.identity, goal=spec.goal.condition, events=events, windows_days=tuple(f.windows_days),
        ratios=tuple(RatioFeature(r.name, r.numerator, r.denominator) for r in f.ratios),
        attributes=tuple(attributes),
        profile_identity=(spec.profile.identity or spec.events.identity) if sources.profiles else None,
        exclude_prior_goal=spec.excludes_prior_goal, eligibility_condition=spec.eligibility.condition,
        active_within_days=spec.active_within_days, goal_kind=spec.goal.kind, goal_value=spec.goal.value,
        derived=f.events is None, meta=meta)


def _named(option: bool | str, default: str) -> str | None:
    return default if option is True else (option or None)


def feature_fragments(fs: FeatureSet, sources: Sources, scoped: bool = False) -> dict[str, str]:
    return {"feature_ctes": feature_ctes(fs, sources.event_tables, sources.profile_table if fs.attributes else None,
                                         scoped),
            **goal_fragments(fs, sources)}


def goal_fragments(fs: FeatureSet, sources: Sources) -> dict[str, str]:
    """What the goal statements need: the event scan, and the label and window sums of the model's goal kind."""
    return {"source_events": source_events_cte(fs, sources.event_tables), "label_columns": label_columns(fs),
            "goal_value_sum": goal_value_sum(fs), "goal_value_sum_column": f", g.{GOAL_VALUE}" if fs.goal_value else ""}


def feature_params(client: AEPClient, sources: Sources, cutoffs: dict[str, datetime], horizon_days: int,
                   scope: str | None = None) -> dict:
    """The query parameters of the feature statements. ``scope``, for statements built ``scoped``, names the
    batches whose profiles they cover (see rescoring.py)."""
    return {"tenant_id": client.schemas.tenant_id(), "events_table": sources.event_tables[0],
            "cutoffs": cutoff_values(cutoffs), "horizon_days": horizon_days, **({"scope": scope} if scope else {})}


@dataclass
class FeatureBuild:
    table: str
    dataset: dict
    sql: str
    params: dict
    query: dict | None = None  # None when an identical table already existed
    dropped: list[str] = field(default_factory=list)

    @property
    def reused(self) -> bool:
        return self.query is None

    @property
    def rows(self) -> int | None:
        return int(self.query["rowCount"]) if self.query and "rowCount" in self.query else None


def build_feature_dataset(client: AEPClient, *, name: str, owner: str, table_prefix: str, params: dict,
                          input_dataset_ids: list[str], fragments: dict[str, str] | None = None,
                          timeout_s: float = 3600) -> FeatureBuild:
    """Run ``sql/{name}.sql`` as a CTAS into a table of ``owner``'s, unless an identical one exists; then drop
    the owner's older tables of the same prefix. A CTAS that fails, or whose table cannot be marked, leaves no
    table behind: the name is this call's own, so a table of that name that was not there before is its."""
    sql = compose(name, fragments)
    inputs = sorted(b for ds in input_dataset_ids for b in client.ingestion.active_batch_ids(ds))
    digest = hashlib.sha256("\n".join([sql, repr(sorted(params.items())), *inputs]).encode()).hexdigest()[:12]
    table = f"{table_prefix}_{digest}"
    all_params = {**params, "table": table}
    existing = client.catalog.find_dataset(table)
    query = None
    if existing is not None:
        require_owned(existing, owner, "reuse")
    else:
        try:
            query = client.query.run(sql, name=f"aep_assets {owner} {name} {digest}", params=all_params,
                                     timeout_s=timeout_s)
            existing = client.catalog.find_dataset(table)
            if existing is None:
                raise LookupError(f"Query {query['id']} succeeded but Catalog has no dataset named {table}.")
            existing = mark_dataset(client, existing, owner)
        except BaseException:
            _discard(client, table, owner, timeout_s)
            raise
    dropped = drop_tables(client, owner, table_prefix, keep=table, timeout_s=timeout_s)
    return FeatureBuild(table, existing, render(sql, all_params), all_params, query, dropped)


def drop_tables(client: AEPClient, owner: str, table_prefix: str, *, keep: str | None = None,
                timeout_s: float = 3600) -> list[str]:
    """Drop ``owner``'s tables whose names start with ``table_prefix`` (but ``keep``): only the model's own, as
    the prefix alone could match another project's dataset."""
    dropped = []
    for ds in client.catalog.iter_datasets(property=f"name~^{table_prefix}_"):
        if ds["name"] != keep and ds["name"].startswith(table_prefix + "_") and owner_of(ds) == owner:
            client.query.run(f"DROP TABLE IF EXISTS {client.catalog.table_name(ds)}",
                             name=f"aep_assets {owner} drop {ds['name']}", timeout_s=timeout_s)
            dropped.append(ds["name"])
    return dropped


def _discard(client: AEPClient, table: str, owner: str, timeout_s: float) -> None:
    """After a failed CTAS: drop its table if it made one (marked as this model's, or not marked yet)."""
    try:
        made = client.catalog.find_dataset(table)
        if made is not None and owner_of(made) in (None, owner):
            client.query.run(f"DROP TABLE IF EXISTS {client.catalog.table_name(made)}",
                             name=f"aep_assets {owner} discard {table}", timeout_s=timeout_s)
    except Exception:  # the CTAS's own error is the one to report; a table left here is dropped next run
        log.warning("could not drop %s after its CTAS failed", table, exc_info=True)


@contextmanager
def transient_feature_dataset(client: AEPClient, **kwargs) -> Iterator[FeatureBuild]:
    """A CTAS table that only serves to be exported and read (EDA, the leakage sample, outcomes): dropped once
    read, whether the reading succeeded or not, so no run leaves it behind."""
    build = build_feature_dataset(client, **kwargs)
    try:
        yield build
    finally:
        try:
            client.query.run(f"DROP TABLE IF EXISTS {client.catalog.table_name(build.dataset)}",
                             name=f"aep_assets {kwargs['owner']} drop {build.table}")
        except Exception:  # the reading's own error is the one to report; the next run drops the table
            log.warning("could not drop %s after reading it", build.table, exc_info=True)
