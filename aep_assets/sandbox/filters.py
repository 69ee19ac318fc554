"""The ``property=`` list filters AEP services share: ``field==value``, ``!=``, ``<``, ``~regex``, existence."""

import re
from collections.abc import Iterable
from typing import Any

_OPS = ("==", "!=", "<=", ">=", "<", ">", "~")


def parse(params: Iterable[str]) -> list[tuple[str, str | None, str | None]]:
    """``["title==X,state==y"]`` -> ``[("title", "==", "X"), ("state", "==", "y")]``."""
    out = []
    for raw in params:
        for clause in raw.split(","):
            clause = clause.strip()
            if not clause:
                continue
            for op in _OPS:
                if op in clause:
                    field, value = clause.split(op, 1)
                    out.append((field.strip(), op, value))
                    break
            else:
                out.append((clause.lstrip("!"), "exists" if not clause.startswith("!") else "missing", None))
    return out


def lookup(obj: dict, dotted: str) -> Any:
    if dotted in obj:
        return obj[dotted]
    cur: Any = obj
    for part in dotted.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def matches(obj: dict, clauses: list[tuple[str, str | None, str | None]]) -> bool:
    for field, op, value in clauses:
        actual = lookup(obj, field)
        if op == "exists":
            ok = actual is not None
        elif op == "missing":
            ok = actual is None
        elif op == "~":
            ok = actual is not None and re.search(value or "", str(actual)) is not None
        else:
            ok = _compare(actual, op, value)
        if not ok:
            return False
    return True


def _compare(actual: Any, op: str | None, value: str | None) -> bool:
    if isinstance(actual, list):
        return any(_compare(a, op, value) for a in actual) if op != "!=" else all(
            _compare(a, op, value) for a in actual)
    if actual is None:
        return op == "!="
    left: Any = actual
    right: Any = value
    if isinstance(actual, bool):
        right = str(value).lower() == "true"
    elif isinstance(actual, (int, float)):
        try:
            right = float(value or 0)
        except ValueError:
            left = str(actual)
    else:
        left = str(actual)
        if op == "==" and value and "*" in value:
            return re.fullmatch(re.escape(value).replace(r"\*", ".*"), left) is not None
    return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[op or "=="]
