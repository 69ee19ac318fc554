"""Translate AEP Query Service SQL (Spark-like, with Adobe-defined functions) to DuckDB.

Adobe-defined functions are parsed by sqlglot's Spark dialect as anonymous calls and rewritten here:

* ``TIME_BETWEEN_PREVIOUS_MATCH(ts, condition, unit) OVER (w)`` becomes the time since the last row
  of the window frame where ``condition`` held (the row itself included, so a matching row gives 0),
  in ``unit`` (seconds by default), or NULL when no row matched. Source: Adobe's
  ``help/query-service/sql/adobe-defined-functions.md``.
* ``randn()`` becomes a standard normal draw (Box-Muller over DuckDB's ``random()``).

Common table expressions are inlined (``AS NOT MATERIALIZED``) as Spark's InlineCTE rule does: every
deterministic one, and a random one only if it is read once, so that each row keeps one draw. DuckDB would
otherwise materialise a CTE read twice, which for a feature query's event scan is every event held at once.
One kind is kept (``AS MATERIALIZED``): a deterministic aggregate read more than once, such as the distinct
(profile, event type) pairs of a co-occurrence self-join. Spark inlines it too, but its plan reuses the
identical exchange below both reads (``spark.sql.exchange.reuse``), so the events are read for it once; the
result is the same either way, and an aggregate's rows are far fewer than the scan's.
"""

import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

STATEMENTS = (exp.Query, exp.Create, exp.Insert, exp.Drop)
UNIT_SECONDS = {"second": 1, "seconds": 1, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600,
                "day": 86400, "days": 86400}


class QueryServiceSQL(Spark):
    """Spark SQL with string literals read as PostgreSQL reads them with ``standard_conforming_strings=on``,
    which the PostgreSQL endpoint announces: in ``'...'`` a doubled quote is a quote and a backslash is an
    ordinary character (psycopg and libpq quote a bound parameter by doubling quotes only, so reading ``\\'``
    as an escaped quote would let a parameter end its literal early); ``E'...'`` is the escape form."""

    class Tokenizer(Spark.Tokenizer):
        STRING_ESCAPES = ["'"]
        BYTE_STRINGS = [("e'", "'"), ("E'", "'")]
        BYTE_STRING_ESCAPES = ["'", "\\"]


class TranslationError(ValueError):
    """The SQL is not valid AEP SQL, or uses a construct the sandbox does not run yet."""


def substitute(sql: str, params: dict[str, object] | None) -> str:
    """Replace ``$name`` placeholders with their values, longest names first (Query Service templates)."""
    if not params:
        return sql
    for name in sorted(params, key=len, reverse=True):
        sql = re.sub(r"\$" + re.escape(name) + r"\b", str(params[name]), sql)
    return sql


def parse(sql: str) -> list[exp.Expression]:
    try:
        statements = [s for s in sqlglot.parse(sql, read=QueryServiceSQL) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise TranslationError(f"Syntax error: {exc.errors[0]['description'] if exc.errors else exc}") from None
    for statement in statements:
        if not isinstance(statement, STATEMENTS):
            raise TranslationError(f"Syntax error at or near {statement.sql(dialect='spark')[:40]!r}: expected "
                                   "SELECT, WITH, CREATE TABLE, INSERT INTO or DROP TABLE.")
    return [s.transform(_rewrite) for s in statements]


def to_duckdb(expression: exp.Expression) -> str:
    return expression.sql(dialect="duckdb")


def translate(sql: str, params: dict[str, object] | None = None) -> list[str]:
    """AEP SQL in, one DuckDB statement per input statement out."""
    return [to_duckdb(s) for s in parse(substitute(sql, params))]


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is None:
        if _aggregate_read_twice(node):
            node.set("materialized", True)
        elif _inlined_by_spark(node):
            node.set("materialized", False)
        return node
    if isinstance(node, exp.Window) and _is_call(node.this, "TIME_BETWEEN_PREVIOUS_MATCH"):
        return _time_between_previous_match(node)
    if _is_call(node, "TIME_BETWEEN_PREVIOUS_MATCH"):
        raise TranslationError("TIME_BETWEEN_PREVIOUS_MATCH needs an OVER (PARTITION BY ... ORDER BY ...) clause.")
    if _is_call(node, "RANDN"):
        return sqlglot.parse_one("SQRT(-2 * LN(1 - RANDOM())) * COS(2 * PI() * RANDOM())", read="duckdb")
    return node


def _inlined_by_spark(cte: exp.CTE) -> bool:
    return not _random(cte) or _reads(cte) <= 1


def _aggregate_read_twice(cte: exp.CTE) -> bool:
    body = cte.this
    aggregates = isinstance(body, exp.Select) and bool(body.args.get("group") or body.args.get("distinct"))
    return aggregates and not _random(cte) and _reads(cte) > 1


def _random(cte: exp.CTE) -> bool:
    return any(isinstance(n, exp.Rand | exp.Randn | exp.Uuid) for n in cte.this.walk())


def _reads(cte: exp.CTE) -> int:
    query = cte.find_ancestor(exp.Query)
    return sum(1 for t in query.find_all(exp.Table) if t.name == cte.alias_or_name and not t.db) if query else 0


def _is_call(node: exp.Expression, name: str) -> bool:
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper() == name
    return name == "RANDN" and type(node).__name__ == "Randn"


def _time_between_previous_match(window: exp.Window) -> exp.Expression:
    args = window.this.expressions
    if len(args) not in (2, 3):
        raise TranslationError("TIME_BETWEEN_PREVIOUS_MATCH takes (timestamp, event_definition[, time_unit]).")
    ts, condition = args[0], args[1]
    unit = args[2].name.lower() if len(args) == 3 else "seconds"
    if unit not in UNIT_SECONDS:
        raise TranslationError(f"TIME_BETWEEN_PREVIOUS_MATCH time unit {unit!r} is not one of "
                               "seconds, minutes, hours, days.")
    last_match = exp.Window(
        this=exp.IgnoreNulls(this=exp.LastValue(this=exp.Case(ifs=[exp.If(this=condition.copy(), true=ts.copy())]))),
        partition_by=[p.copy() for p in window.args.get("partition_by") or []],
        order=window.args["order"].copy() if window.args.get("order") else None,
        spec=window.args["spec"].copy() if window.args.get("spec") else None,
    )
    elapsed = exp.Sub(this=exp.Anonymous(this="epoch_us", expressions=[ts.copy()]),
                      expression=exp.Anonymous(this="epoch_us", expressions=[last_match]))
    per_unit = exp.Literal.number(UNIT_SECONDS[unit] * 1_000_000.0)
    return exp.Paren(this=exp.Div(this=exp.Paren(this=elapsed), expression=per_unit))
