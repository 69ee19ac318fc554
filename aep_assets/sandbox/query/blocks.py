"""Query Service's anonymous blocks: ``$$ BEGIN stmt; ... [EXCEPTION WHEN OTHER THEN stmt; ...] END $$``.

Statements run in order. ``SET @v = SELECT ...`` keeps the first value of the query's first row, and
``@v`` later in the block is replaced by it (a number as is, anything else as a quoted string). If a
statement fails, the exception section runs instead of the rest, and its results are the block's; with
no exception section the error stands (Adobe's "Anonymous block" page; ``$$BEGIN ... $$END`` is also
accepted, as that page writes it once).
"""

import re
from collections.abc import Callable

BLOCK = re.compile(r"^\s*\$\$\s*BEGIN\b(?P<body>.*?)(?:\bEXCEPTION\s+WHEN\s+OTHERS?\s+THEN\b(?P<handler>.*?))?"
                   r"(?:\bEND\s*\$\$|\$\$\s*END)\s*;?\s*$", re.I | re.S)
SET_VARIABLE = re.compile(r"^\s*SET\s+@(\w+)\s*=\s*(.+)$", re.I | re.S)
SET_OPTION = re.compile(r"^\s*SET\s+[A-Za-z_][\w.]*\s*(=|\s+TO\s+)", re.I)


def is_block(sql: str) -> bool:
    return BLOCK.match(sql) is not None


def split_statements(text: str) -> list[str]:
    """Split on semicolons outside quotes."""
    out, current, quote = [], [], None
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ";":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return [s.strip() for s in out if s.strip()]


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def run_block(sql: str, run: Callable[[str], list], first_value: Callable[[str], object],
              is_error: Callable[[Exception], bool]) -> list:
    """Run the block with ``run(statement) -> results`` and ``first_value(select) -> value``; errors for
    which ``is_error`` holds send control to the exception section."""
    match = BLOCK.match(sql)
    variables: dict[str, str] = {}

    def bind(statement: str) -> str:
        for name in sorted(variables, key=len, reverse=True):
            statement = re.sub(r"@" + re.escape(name) + r"\b", variables[name], statement)
        return statement

    def execute(statements: list[str]) -> list:
        results: list = []
        for statement in statements:
            setting = SET_VARIABLE.match(statement)
            if setting:
                variables[setting.group(1)] = _literal(first_value(bind(setting.group(2))))
            elif SET_OPTION.match(statement):
                continue  # session options such as resolve_fallback_snapshot_on_failure
            else:
                results.extend(run(bind(statement)))
        return results

    try:
        return execute(split_statements(match.group("body")))
    except Exception as exc:
        if match.group("handler") is None or not is_error(exc):
            raise
        return execute(split_statements(match.group("handler")))
