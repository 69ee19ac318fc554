"""Every SQL fragment of a model's YAML, checked against its datasets before anything is spent.

One ``SELECT ... LIMIT 0`` per source dataset binds every fragment that reads it (identity, goal condition and
value, eligibility, each feature's condition and value, the profile's identity and fields): Query Service
parses and resolves the columns without reading a row. Only when that fails is each fragment tried alone, so
the error names the YAML key (``features.events[2].value``), the expression, the engine's message and the
dataset's nearest field names. ``check_model_data`` then says when the data cannot serve the model at all.
"""

import difflib
import re
from dataclasses import dataclass
from datetime import datetime

from ..aep import AEPClient
from .feature_builds import format_cutoff
from .feature_sql import tenant_sql
from .sources import SourceDataset, Sources
from .spec import ModelSpec

IDENTIFIER = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?![\w'\"(])")
QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
SQL_WORDS = {"and", "or", "not", "is", "null", "true", "false", "in", "like", "ilike", "between", "case", "when",
             "then", "else", "end", "as", "cast", "double", "int", "bigint", "string", "varchar", "date", "timestamp",
             "interval", "day", "days", "distinct", "boolean", "float", "decimal"}


class ModelDefinitionError(ValueError):
    """A part of the model's YAML that does not run on its data, named by its key."""


@dataclass(frozen=True)
class Fragment:
    key: str  # where it is in the YAML, e.g. features.events[2].value
    sql: str  # as the user wrote it
    role: str  # condition | value | identity | field

    def select_item(self, alias: str) -> str:
        expr = tenant_sql(self.sql)
        match self.role:
            case "condition":
                return f"CASE WHEN ({expr}) THEN 1 ELSE 0 END AS {alias}"
            case "value":
                return f"CAST(({expr}) AS DOUBLE) AS {alias}"
            case _:
                return f"({expr}) AS {alias}"


def event_fragments(spec: ModelSpec) -> list[Fragment]:
    out = [Fragment("events.identity", spec.events.identity, "identity"),
           Fragment("goal.condition", spec.goal.condition, "condition")]
    if spec.goal.value:
        out.append(Fragment("goal.value", spec.goal.value, "value"))
    if spec.eligibility.condition:
        out.append(Fragment("eligibility.condition", spec.eligibility.condition, "condition"))
    for i, e in enumerate(spec.features.events or ()):
        out.append(Fragment(f"features.events[{i}].condition", e.condition, "condition"))
        if e.value:
            out.append(Fragment(f"features.events[{i}].value", e.value, "value"))
    return out


def profile_fragments(spec: ModelSpec) -> list[Fragment]:
    if not spec.profile.dataset:
        return []
    identity = ("profile.identity", spec.profile.identity) if spec.profile.identity else \
        ("events.identity (used for the profile dataset too; set profile.identity if it differs)", spec.events.identity)
    out = [Fragment(identity[0], identity[1], "identity")]
    for i, a in enumerate(spec.profile.attributes):
        field = a if isinstance(a, str) else a.field
        key = f"profile.attributes[{i}]" if isinstance(a, str) else f"profile.attributes[{i}].field"
        out.append(Fragment(key, field, "field"))
    return out


def check_model_sql(client: AEPClient, spec: ModelSpec, sources: Sources) -> None:
    """Raise ``ModelDefinitionError`` naming every fragment that does not run on its dataset."""
    if spec.simulated:
        return  # the demo's own definition, over datasets it made itself
    tenant = client.schemas.tenant_id()
    problems = []
    for key, dataset in [*((f"events.datasets[{k}]", d) for k, d in enumerate(sources.events)),
                         *((("profile.dataset", sources.profiles),) if sources.profiles else ())]:
        fragments = profile_fragments(spec) if key == "profile.dataset" else event_fragments(spec)
        problems += _check_source(client, tenant, key, dataset, fragments)
    if problems:
        raise ModelDefinitionError("The model's YAML does not run on its data:\n" + "\n".join(
            f"- {p}" for p in problems))


def _check_source(client: AEPClient, tenant: str, key: str, dataset: SourceDataset,
                  fragments: list[Fragment]) -> list[str]:
    table = dataset.table
    if _error(client, tenant, table, fragments) is None:
        return []
    fields = dataset_fields(client, dataset)
    problems = []
    for f in fragments:
        message = _error(client, tenant, table, [f])
        if message is None:
            continue
        near = nearest_fields(f.sql.replace("{tenant}", tenant), fields)
        hint = f" Nearest fields: {', '.join(near)}." if near else ""
        problems.append(f"{f.key} = {f.sql!r} does not run on {key} {dataset.name!r}: "
                        f"{message}.{hint} Fix it in the model's YAML.")
    return problems or [f"{key} {dataset.name!r}: the fragments run one by one but not together: "
                        f"{_error(client, tenant, table, fragments)}"]


def _error(client: AEPClient, tenant: str, table: str, fragments: list[Fragment]) -> str | None:
    import psycopg  # the driver Query Service's interactive SELECTs go through

    items = ", ".join(f.select_item(f"f{k}") for k, f in enumerate(fragments))
    sql = f"SELECT {items} FROM {table} LIMIT 0".replace("$tenant_id", tenant)
    try:
        client.query.select(sql)
    except psycopg.Error as exc:
        return " ".join(str(exc).split()).rstrip(".")
    return None


def dataset_fields(client: AEPClient, dataset: SourceDataset) -> list[str]:
    """Every field path of the dataset's schema, dotted (``commerce.order.priceTotal``)."""
    schema = client.schemas.get_schema(dataset.schema_id, full=True)
    out: list[str] = []

    def walk(props: dict, prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            out.append(path)
            if isinstance(spec, dict) and spec.get("properties"):
                walk(spec["properties"], path + ".")

    walk(schema.get("properties", {}), "")
    return out


def nearest_fields(expression: str, fields: list[str], n: int = 3) -> list[str]:
    """For each dotted name in ``expression`` that is not a field, the closest field paths."""
    known = set(fields)
    lowered = {f.lower(): f for f in fields}
    out: list[str] = []
    for name in IDENTIFIER.findall(QUOTED.sub(" ", expression)):
        if name in known or name.lower() in SQL_WORDS:
            continue
        for match in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6):
            if lowered[match] not in out:
                out.append(lowered[match])
    return out[:n]


def check_model_data(client: AEPClient, spec: ModelSpec, sources: Sources, train_cutoff: datetime | None = None
                     ) -> None:
    """Raise ``ModelDefinitionError`` when the data cannot serve the model at all: an empty dataset, no event
    before the train cutoff, or a goal that matches no event. One aggregate query per events dataset."""
    if spec.simulated:
        return
    tenant = client.schemas.tenant_id()
    goal = tenant_sql(spec.goal.condition).replace("$tenant_id", tenant)
    totals = {"events": 0, "goal_events": 0, "before": 0}
    first = []
    for k, ds in enumerate(sources.events):
        table = ds.table
        before = f"timestamp < TIMESTAMP '{format_cutoff(train_cutoff)}'" if train_cutoff else "TRUE"
        row = client.query.select(
            f"SELECT COUNT(*) AS events, COUNT(CASE WHEN ({goal}) THEN 1 END) AS goal_events, "
            f"COUNT(CASE WHEN {before} THEN 1 END) AS before, MIN(timestamp) AS first_event FROM {table}")[0]
        if not row["events"]:
            raise ModelDefinitionError(
                f"events.datasets[{k}] {ds.name!r} is empty: no successful batch holds any event "
                "(batches still loading or failed, or all reverted). Check its batches in AEP, or name the "
                "dataset your Web SDK or source connector lands events in.")
        for key in totals:
            totals[key] += int(row[key] or 0)
        if row["first_event"] is not None:
            first.append(row["first_event"])
    if train_cutoff and not totals["before"]:
        raise ModelDefinitionError(
            f"none of the {totals['events']} events lies before cutoffs.train {train_cutoff:%Y-%m-%d}: the data "
            f"starts {min(first):%Y-%m-%d}. Move cutoffs.train and cutoffs.test later (cutoffs.test at least "
            "goal.outcome_days before the last event), e.g. as days before today.")
    if not totals["goal_events"]:
        union = " UNION ALL ".join(f"SELECT eventType FROM {d.table}" for d in sources.events)
        common = client.query.select(f"SELECT eventType, COUNT(*) AS n FROM ({union}) AS e GROUP BY eventType "
                                     "ORDER BY n DESC LIMIT 5")
        seen = ", ".join(f"{r['eventType']} ({r['n']})" for r in common)
        raise ModelDefinitionError(
            f"goal.condition = {spec.goal.condition!r} matches none of the {totals['events']} events in "
            f"events.datasets. The most frequent eventType values are: {seen}. Fix goal.condition in the model's "
            "YAML.")
