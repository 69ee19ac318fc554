"""Every name a caller sends that becomes a path or SQL goes through here, once.

Paths: sandbox names, dataset and batch ids, file names, export paths and file name templates must
use AEP's allowed characters, and a path built from them must resolve inside its root. SQL: every
identifier is quoted by ``quote_ident`` and every literal by ``quote_literal``; nothing else formats
a caller's text into SQL. A refusal is a 400 in AEP's error shape.
"""

import re
from pathlib import Path

from .errors import SandboxError

SANDBOX_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,255}$")  # AEP: lowercase letters, digits and hyphens
OBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")  # Catalog and batch ids
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ ()=+-]{0,254}$")
PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+-]{0,254}$")
TEMPLATE = re.compile(r"^[A-Za-z0-9_%().:=+ -]{1,255}$")  # macros such as %DATETIME(YYYYMMdd_HHmmss)%


class InvalidName(SandboxError):
    status, code, title = 400, "GW-4000-400", "Invalid name"


def _check(kind: str, value: object, pattern: re.Pattern, fix: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or value in (".", ".."):
        raise InvalidName(f"{kind} {value!r} is not allowed: {fix}.")
    return value


def sandbox_name(value: object) -> str:
    return _check("Sandbox name", value, SANDBOX_NAME, "use lowercase letters, digits and hyphens")


def object_id(value: object, kind: str = "Id") -> str:
    return _check(kind, value, OBJECT_ID, "use letters, digits, '_' and '-'")


def file_name(value: object) -> str:
    return _check("File name", value, FILE_NAME, "use a plain name without '/' (letters, digits, '.', '_', '-')")


def relative_path(value: object, kind: str = "Path") -> str:
    """A folder path under a root: segments of allowed characters, no '..', no leading '/' needed."""
    if not isinstance(value, str):
        raise InvalidName(f"{kind} {value!r} is not allowed: give a string.")
    segments = [s for s in value.strip().strip("/").split("/") if s]
    for segment in segments:
        _check(kind, segment, PATH_SEGMENT, "use segments of letters, digits, '.', '_' and '-', without '..'")
    return "/".join(segments)


def file_name_template(value: object) -> str:
    return _check("filenameTemplate", value, TEMPLATE, "use letters, digits, '_', '-' and AEP's %MACROS%, no '/'")


def inside(root: Path, *parts: str) -> Path:
    """``root/parts`` resolved, refused unless it stays inside ``root``."""
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise InvalidName(f"{'/'.join(parts)!r} leads outside its folder.")
    return path


def quote_ident(name: str) -> str:
    """A SQL identifier, whatever it holds."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def path_sql(dotted: str) -> str:
    """An XDM field path (``a.b.c`` or ``/a/b/c``) as a chain of quoted identifiers."""
    return ".".join(quote_ident(p) for p in dotted.strip("/").replace("/", ".").split(".") if p)
