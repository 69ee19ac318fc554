"""The subset of Profile Query Language the pipeline emits, compiled to SQL over profile attributes.

Supported: comparisons ``= != < <= > >=`` between an attribute path (``_tenant.propensity``,
``homeAddress.state``) and a number, double-quoted string or boolean, combined with ``and``,
``or``, ``not`` and parentheses. Not supported yet: ``xEvent`` queries, functions, ``date()``.
"""

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"""\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|>=|<=|=|<|>)
                        |(?P<lp>\()|(?P<rp>\))|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))""",
                    re.VERBOSE)


class PQLError(ValueError):
    pass


@dataclass
class Compiled:
    sql: str
    paths: list[str] = field(default_factory=list)


def tokenize(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PQLError(f"Unexpected text at position {pos}: {text[pos:pos + 20]!r}.")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.i, self.paths = tokens, 0, []

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise PQLError("The expression ends too early.")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def expr(self) -> str:
        parts = [self.conj()]
        while self.keyword("or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conj(self) -> str:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def unary(self) -> str:
        if self.keyword("not"):
            return f"(NOT {self.unary()})"
        tok = self.peek()
        if tok and tok[0] == "lp":
            self.take()
            inner = self.expr()
            if self.take()[0] != "rp":
                raise PQLError("A '(' is not closed.")
            return inner
        return self.comparison()

    def comparison(self) -> str:
        kind, path = self.take()
        if kind != "word" or path.lower() in ("and", "or", "not", "true", "false"):
            raise PQLError(f"Expected an attribute path, got {path!r}.")
        kind, op = self.take()
        if kind != "op":
            raise PQLError(f"Expected a comparison operator after {path!r}, got {op!r}.")
        kind, value = self.take()
        if kind == "num":
            literal = value
        elif kind == "str":
            literal = "'" + value[1:-1].replace("'", "''") + "'"
        elif kind == "word" and value.lower() in ("true", "false"):
            literal = value.upper()
        else:
            raise PQLError(f"Expected a number, string or boolean after {op!r}, got {value!r}.")
        if path not in self.paths:
            self.paths.append(path)
        column = f'"p{self.paths.index(path)}"'
        return f"({column} {'<>' if op == '!=' else op} {literal})"


def compile_pql(text: str) -> Compiled:
    parser = _Parser(tokenize(text))
    sql = parser.expr()
    if parser.peek() is not None:
        raise PQLError(f"Unexpected {parser.peek()[1]!r} after a complete expression.")
    return Compiled(sql, parser.paths)
