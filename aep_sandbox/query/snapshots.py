"""Query Service's incremental reads: ``SNAPSHOT`` clauses, ``history_meta('t')`` and ``table_exists('t')``.

A table's snapshots are its visible batches, in commit order; a snapshot's id is the batch's commit
time in epoch milliseconds (a long, as in AEP). ``SINCE a`` reads the batches after ``a``, ``AS OF b``
those up to and including ``b``, ``BETWEEN a AND b`` both; ``'HEAD'`` is before the first snapshot and
``'TAIL'`` the last one (Adobe's SQL syntax page, "SNAPSHOT clause").

The clause is not Spark SQL, so it is rewritten before parsing: ``t SNAPSHOT SINCE 5`` becomes the
table name ``t__snapshot__5__tail``, which the engine serves as a view over those batches.
"""

import re

import pyarrow as pa
from sqlglot import exp

CLAUSE = re.compile(r"\b([A-Za-z_]\w*)\s+SNAPSHOT\s+(?:(SINCE)\s+('?\w+'?)|(AS\s+OF)\s+('?\w+'?)"
                    r"|(BETWEEN)\s+('?\w+'?)\s+AND\s+('?\w+'?))", re.I)
SNAPSHOT_TABLE = re.compile(r"^(\w+?)__snapshot__(\w+)__(\w+)$")
HISTORY_TABLE = "__history_meta__"


def _bound(token: str) -> str:
    value = token.strip("'").lower()
    if value in ("head", "tail") or value.isdigit():
        return value
    raise ValueError(f"Snapshot id {token!r} is not a number, 'HEAD' or 'TAIL'.")


def rewrite_clauses(sql: str) -> str:
    def table(m: re.Match) -> str:
        name = m.group(1)
        if m.group(2):
            lo, hi = _bound(m.group(3)), "tail"
        elif m.group(4):
            lo, hi = "head", _bound(m.group(5))
        else:
            lo, hi = _bound(m.group(7)), _bound(m.group(8))
        return f"{name}__snapshot__{lo}__{hi}"

    return CLAUSE.sub(table, sql)


def snapshot_ids(batches: list[dict]) -> list[int]:
    """One id per visible batch (oldest first): the commit time in ms, made strictly increasing."""
    ids, last = [], 0
    for b in batches:
        last = max(int(b.get("completed") or b["created"]), last + 1)
        ids.append(last)
    return ids


def in_range(batches: list[dict], lo: str, hi: str) -> list[dict]:
    ids = snapshot_ids(batches)
    top = ids[-1] if ids else 0
    low = 0 if lo == "head" else top if lo == "tail" else int(lo)
    high = top if hi == "tail" else 0 if hi == "head" else int(hi)
    return [b for b, s in zip(batches, ids, strict=True) if low < s <= high]


def history_rows(batches: list[dict]) -> pa.Table:
    ids = snapshot_ids(batches)
    return pa.table({
        "snapshot_id": pa.array(ids, pa.int64()),
        "parent_id": pa.array([None, *ids[:-1]] if ids else [], pa.int64()),
        "is_current": pa.array([i == len(ids) - 1 for i in range(len(ids))], pa.bool_()),
        "snapshot_generation": pa.array(range(1, len(ids) + 1), pa.int64()),
        "made_current_at": pa.array([int(b.get("completed") or b["created"]) * 1000 for b in batches],
                                    pa.timestamp("us", tz="UTC")),
        "output_record_count": pa.array([int((b.get("metrics") or {}).get("outputRecordCount", 0))
                                         for b in batches], pa.int64()),
    })


def _call_name(node: exp.Expression) -> str | None:
    return str(node.this).upper() if isinstance(node, exp.Anonymous) else None


def _string_arg(node: exp.Anonymous, what: str) -> str:
    args = node.expressions
    if len(args) != 1 or not isinstance(args[0], exp.Literal) or not args[0].is_string:
        raise ValueError(f"{what} takes one table name in quotes, e.g. {what}('my_table').")
    return args[0].this.lower()


def rewrite_functions(statement: exp.Expression, exists) -> tuple[exp.Expression, list[str]]:
    """``SELECT history_meta('t')`` becomes a read of a registered table; ``table_exists('t')`` a literal.
    Returns the statement and the tables whose history is read."""
    histories: list[str] = []

    def visit(node: exp.Expression) -> exp.Expression:
        if (isinstance(node, exp.Select) and len(node.expressions) == 1
                and _call_name(node.expressions[0]) == "HISTORY_META"):
            table = _string_arg(node.expressions[0], "history_meta")
            histories.append(table)
            return exp.select("*").from_(exp.to_table(HISTORY_TABLE + table))
        if _call_name(node) == "TABLE_EXISTS":
            return exp.Literal.string("t" if exists(_string_arg(node, "table_exists")) else "f")
        return node

    return statement.transform(visit), histories
