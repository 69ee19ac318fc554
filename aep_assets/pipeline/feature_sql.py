"""Query Service SQL generated from a model's feature set, for training and scoring alike.

One chain of CTEs serves every statement: ``source_events`` (the model's event datasets, each row with
its identity, timestamp, eventType, batch, goal flag and one match flag ``e<i>`` and value ``v<i>`` per
feature event; in an incremental rescore only the rows of the profiles in ``scope_profiles``, those with
rows in the batches ``$scope`` names), ``events``, ``history`` (events strictly before each cutoff),
``event_features`` (the aggregations) and ``profiles`` (attributes, one row per identity). The
statements in ``sql/`` place it where they say ``$feature_ctes``.
"""

import re

from ..ml.feature_set import ELIGIBLE, GOAL_VALUE, ID, LABEL, MINUTES_PER_DAY, AttributeFeature, FeatureSet
from .spec import TENANT


def tenant_sql(expr: str) -> str:
    """``{tenant}`` in a user's SQL becomes the ``$tenant_id`` query parameter."""
    return expr.replace(TENANT, "$tenant_id")


# The characters whose reading differs between SQL dialects inside '...': Spark SQL escapes with a backslash and
# does not read a doubled quote as a quote, PostgreSQL with standard_conforming_strings=on reads a backslash as
# itself. Adobe's docs promise neither reading for Query Service, so a data value never holds them in a literal.
_DIALECT_SENSITIVE = re.compile(r"(['\\])")


def quote_string(value: str) -> str:
    """A data value as a SQL string expression that every reading of string literals reads alike.

    The literal pieces hold neither a quote nor a backslash; those characters come from ``chr(39)`` and
    ``chr(92)``, joined with ``||`` (Spark SQL, PostgreSQL and DuckDB all read it so). A value can therefore
    never end its literal early on the sandbox or on Query Service, whatever it holds.
    """
    if "\x00" in value:
        raise ValueError(f"{value!r} holds a NUL character, which no SQL string can carry.")
    if not _DIALECT_SENSITIVE.search(value):
        return f"'{value}'"
    pieces = [f"chr({ord(p)})" if _DIALECT_SENSITIVE.fullmatch(p) else f"'{p}'"
              for p in _DIALECT_SENSITIVE.split(value) if p]
    return "(" + " || ".join(pieces) + ")"


def _flag(condition: str) -> str:
    return f"CASE WHEN ({tenant_sql(condition)}) THEN 1 ELSE 0 END"


def _source_select(fs: FeatureSet, table: str, scoped: bool = False) -> str:
    cols = [f"{tenant_sql(fs.identity)} AS {ID}", "timestamp", "eventType",
            "_acp_system_metadata.acp_sourceBatchId AS source_batch", f"{_flag(fs.goal)} AS goal_event",
            f"{_flag(fs.eligibility_condition or 'TRUE')} AS eligibility_event"]
    if fs.goal_value:
        cols.append(f"CAST(({tenant_sql(fs.goal_value)}) AS DOUBLE) AS {GOAL_VALUE}")
    for i, e in enumerate(fs.events):
        cols.append(f"{_flag(e.condition)} AS e{i}")
        if e.value:
            cols.append(f"CAST(({tenant_sql(e.value)}) AS DOUBLE) AS v{i}")
    body = ",\n        ".join(cols)
    # The scope filters the table's rows before the flags are computed: DuckDB does not push a semi-join below a
    # projection (Spark does), and computing every flag of every event only to keep a few profiles' cost seconds.
    where = f"\n    WHERE {tenant_sql(fs.identity)} IN (SELECT {ID} FROM scope_profiles)" if scoped else ""
    return f"    SELECT\n        {body}\n    FROM {table}{where}"


def label_columns(fs: FeatureSet) -> str:
    """The label over ``goals_in_window`` (alias ``g``): the goal occurred (conversion, value) or did not (churn),
    and for kind value the sum of the goal's value over the window (0 when no goal event)."""
    occurred, missed = (0, 1) if fs.goal_kind == "churn" else (1, 0)
    columns = f"CASE WHEN g.goals > 0 THEN {occurred} ELSE {missed} END AS {LABEL}"
    return columns + (f", COALESCE(g.{GOAL_VALUE}, 0) AS {GOAL_VALUE}" if fs.goal_value else "")


def goal_value_sum(fs: FeatureSet) -> str:
    """``goals_in_window``'s extra column for kind value."""
    return f", SUM(e.{GOAL_VALUE}) AS {GOAL_VALUE}" if fs.goal_value else ""


def source_events_cte(fs: FeatureSet, tables: list[str], scoped: bool = False) -> str:
    if not tables:
        raise ValueError("A feature set needs at least one events table.")
    return "source_events AS (\n" + "\n    UNION ALL\n".join(_source_select(fs, t, scoped) for t in tables) + "\n)"


def scope_profiles_cte(fs: FeatureSet, tables: list[str]) -> str:
    """The profiles an incremental rescore covers: those with rows in the batches ``$scope`` names (see
    ``scope_in_batches``). It reads only the identity and the batch of each row."""
    return "scope_profiles AS (\n" + "\n    UNION ALL\n".join(
        f"    SELECT {tenant_sql(fs.identity)} AS {ID}\n    FROM {t}\n    WHERE $scope" for t in tables) + "\n)"


def _in_window(flag: str, days: int) -> str:
    return f"{flag} = 1 AND minutesBefore <= {days} * {MINUTES_PER_DAY}"


def count_where(condition: str) -> str:
    """How many rows meet ``condition``. COUNT rather than a SUM of 0/1 flags: the same number, but a BIGINT on
    every engine (DuckDB widens a SUM of integers to a 128-bit HUGEINT, which costs a GROUP BY memory and time)."""
    return f"COUNT(CASE WHEN {condition} THEN 1 END)"


def _event_aggregates(fs: FeatureSet) -> list[str]:
    aggs = []
    for i, e in enumerate(fs.events):
        aggs.append(f"{count_where(f'e{i} = 1')} AS {e.name}")
        aggs += [f"{count_where(_in_window(f'e{i}', d))} AS {e.name}_{d}d" for d in fs.windows_days]
        if e.value:
            names = fs.value_names(e)
            aggs.append(f"SUM(CASE WHEN e{i} = 1 THEN v{i} END) AS {names[0]}")
            aggs += [f"SUM(CASE WHEN {_in_window(f'e{i}', d)} THEN v{i} END) AS {n}"
                     for d, n in zip(fs.windows_days, names[1:], strict=True)]
    for i, e in enumerate(fs.events):
        if e.recency:
            aggs.append(f"MIN(CASE WHEN e{i} = 1 THEN minutesBefore END) AS {e.recency}")
    for i, e in enumerate(fs.events):
        if e.first:
            aggs.append(f"MAX(CASE WHEN e{i} = 1 THEN minutesBefore END) AS {e.first}")
    return [*aggs, f"{count_where('goal_event = 1')} AS goal_events_before",
            "MAX(eligibility_event) AS eligibility_events_before", "MIN(minutesBefore) AS minutes_since_last_event"]


def _attribute_select(a: AttributeFeature, column: str) -> str:
    match a.kind:
        case "number":
            return f"CAST(p.{column} AS DOUBLE) AS {a.name}"
        case "category":
            cases = " ".join(f"WHEN {quote_string(c)} THEN {k}" for k, c in enumerate(a.categories))
            return f"CASE p.{column} {cases} END AS {a.name}" if cases else f"CAST(NULL AS INT) AS {a.name}"
        case "days_since":
            return f"datediff(c.cutoff, p.{column}) AS {a.name}"
        case "years_since":
            return f"year(c.cutoff) - p.{column} AS {a.name}"
        case other:
            raise ValueError(f"attribute {a.name!r}: kind {other!r} is not number, category, days_since or "
                             "years_since.")


def _eligible(fs: FeatureSet) -> str:
    rules = []
    if fs.exclude_prior_goal:
        rules.append("f.goal_events_before = 0")
    if fs.eligibility_condition:
        rules.append("f.eligibility_events_before = 1")
    if fs.active_within_days:
        rules.append(f"f.minutes_since_last_event <= {fs.active_within_days} * {MINUTES_PER_DAY}")
    return f"CASE WHEN {' AND '.join(rules)} THEN 1 ELSE 0 END" if rules else "1"


def feature_ctes(fs: FeatureSet, events_tables: list[str], profiles_table: str | None, scoped: bool = False) -> str:
    """The CTEs ending in ``features``: one row per (profile with an event before T, cutoff T); ``scoped``, only
    for the profiles with rows in the batches ``$scope`` names."""
    if fs.attributes and (profiles_table is None or fs.profile_identity is None):
        raise ValueError("Profile attributes need a profile dataset; set profile.dataset or remove "
                         "profile.attributes.")
    ctes = [
        "cutoffs AS (\n    SELECT cutoff, split FROM (VALUES $cutoffs) AS c(cutoff, split)\n)",
        *([scope_profiles_cte(fs, events_tables)] if scoped else []),
        source_events_cte(fs, events_tables, scoped),
        f"events AS (\n    SELECT * FROM source_events WHERE {ID} IS NOT NULL\n)",
        "history AS (\n    SELECT e.*, c.cutoff,\n"
        "        (unix_micros(c.cutoff) - unix_micros(e.timestamp)) / 60000000.0 AS minutesBefore\n"
        "    FROM events AS e\n    JOIN cutoffs AS c ON e.timestamp < c.cutoff\n)",
        "event_features AS (\n    SELECT\n        " + ",\n        ".join([ID, "cutoff", *_event_aggregates(fs)])
        + f"\n    FROM history\n    GROUP BY {ID}, cutoff\n)",
    ]
    columns = [f"f.{ID}", "f.cutoff", "c.split"]
    for e in fs.events:
        columns += [f"f.{n}" for n in (e.name, *(f"{e.name}_{d}d" for d in fs.windows_days))]
        columns += [f"COALESCE(f.{n}, 0) AS {n}" for n in fs.value_names(e)]
    columns += [f"f.{e.recency}" for e in fs.events if e.recency]
    columns += [f"f.{e.first}" for e in fs.events if e.first]
    columns += [f"CASE WHEN f.{r.denominator} > 0 THEN f.{r.numerator} / f.{r.denominator} END AS {r.name}"
                for r in fs.ratios]
    joins = ""
    if fs.attributes:
        picks = ",\n        ".join(f"MAX({tenant_sql(a.field)}) AS a{k}" for k, a in enumerate(fs.attributes))
        pid = tenant_sql(fs.profile_identity)
        # Several rows per identity (a profile dataset with history) merge into one, as Profile merges them.
        ctes.append(f"profiles AS (\n    SELECT\n        {pid} AS {ID},\n        {picks}\n"
                    f"    FROM {profiles_table}\n    WHERE {pid} IS NOT NULL\n    GROUP BY {pid}\n)")
        columns += [_attribute_select(a, f"a{k}") for k, a in enumerate(fs.attributes)]
        joins = f"\n    LEFT JOIN profiles AS p ON p.{ID} = f.{ID}"
    columns.append(f"{_eligible(fs)} AS {ELIGIBLE}")
    ctes.append("features AS (\n    SELECT\n        " + ",\n        ".join(columns)
                + "\n    FROM event_features AS f\n    JOIN cutoffs AS c ON c.cutoff = f.cutoff" + joins + "\n)")
    return ",\n\n".join(ctes)


def scope_in_batches(batch_ids: list[str]) -> str:
    """The ``$scope`` of an incremental rescore: the rows of these batches, by the
    ``_acp_system_metadata.acp_sourceBatchId`` column Query Service gives every row."""
    batches = ", ".join(quote_string(b) for b in batch_ids) or "NULL"
    return f"_acp_system_metadata.acp_sourceBatchId IN ({batches})"

