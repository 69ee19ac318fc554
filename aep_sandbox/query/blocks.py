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


def _segments(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_code) pieces: quoted strings, quoted names and comments are not code.

    Strings are read as the query parser reads them (``standard_conforming_strings=on``): in ``'...'`` a doubled
    quote is a quote and a backslash is ordinary; in ``E'...'`` a backslash also escapes the next character.
    """
    out, i, start, n = [], 0, 0, len(text)

    def cut(end: int, code: bool) -> None:
        if end > start:
            out.append((text[start:end], code))

    while i < n:
        ch = text[i]
        if ch in "'\"" or (ch == "-" and text.startswith("--", i)):
            cut(i, True)
            start = i
            if ch == "-":
                end = text.find("\n", i)
                i = n if end < 0 else end
            else:
                escapes = ch == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum()
                                                                                         or text[i - 2] == "_"))
                i += 1
                while i < n:
                    if escapes and text[i] == "\\":
                        i += 2
                    elif text[i] == ch:
                        if text.startswith(ch * 2, i):
                            i += 2
                        else:
                            i += 1
                            break
                    else:
                        i += 1
            cut(i, False)
            start = i
        else:
            i += 1
    cut(n, True)
    return out


def split_statements(text: str) -> list[str]:
    """Split on semicolons outside strings, quoted names and comments."""
    out, current = [], []
    for piece, code in _segments(text):
        if not code:
            current.append(piece)
            continue
        parts = piece.split(";")
        current.append(parts[0])
        for part in parts[1:]:
            out.append("".join(current))
            current = [part]
    out.append("".join(current))
    return [s.strip() for s in out if s.strip()]


def replace_in_code(text: str, pattern: re.Pattern, replace: Callable[[re.Match], str]) -> str:
    """``pattern.sub(replace, ...)`` on the code of ``text`` only: never inside a string, a quoted name or a
    comment, so a value that looks like ``@v`` stays data."""
    return "".join(pattern.sub(replace, piece) if code else piece for piece, code in _segments(text))


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"  # a standard string: only a quote needs escaping


def run_block(sql: str, run: Callable[[str], list], first_value: Callable[[str], object],
              is_error: Callable[[Exception], bool]) -> list:
    """Run the block with ``run(statement) -> results`` and ``first_value(select) -> value``; errors for
    which ``is_error`` holds send control to the exception section."""
    match = BLOCK.match(sql)
    variables: dict[str, str] = {}

    def bind(statement: str) -> str:
        if not variables:
            return statement
        names = "|".join(re.escape(n) for n in sorted(variables, key=len, reverse=True))
        return replace_in_code(statement, re.compile(r"@(" + names + r")\b"), lambda m: variables[m.group(1)])

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
