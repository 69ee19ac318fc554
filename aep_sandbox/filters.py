"""The ``property=`` list filters AEP services share: ``field==value``, ``!=``, ``<``, ``~regex``, existence.

A caller's regular expression (``~``) and wildcard (``==a*b``) run on RE2, whose time grows linearly with the
text whatever the pattern: Python's backtracking ``re`` would let ``name~(a+)+$`` hold the server for seconds,
doubling with every character. RE2 has no backreferences or lookaround; such a pattern is a 400.
"""

import functools
import re
from collections.abc import Iterable
from typing import Any

import re2

from . import errors

MAX_PATTERN = 1000  # characters of a caller's pattern
_RE2 = re2.Options()
_RE2.log_errors = False  # a caller's bad pattern is their 400, not a line in the sandbox's log


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str):
    if len(pattern) > MAX_PATTERN:
        raise errors.SandboxError(f"The filter's pattern is {len(pattern)} characters long; at most {MAX_PATTERN}.")
    try:
        return re2.compile(pattern, _RE2)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise errors.SandboxError(f"The filter's regular expression {pattern[:80]!r} is not valid: {detail} "
                                  "(no backreferences or lookaround).") from None

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
            ok = actual is not None and _compiled(value or "").search(str(actual)) is not None
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
            return _compiled(re.escape(value).replace(r"\*", ".*")).fullmatch(left) is not None
    return {"==": left == right, "!=": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[op or "=="]
