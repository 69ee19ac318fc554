"""What a stage's result shows of itself, in plain values: the assets turn them into Dagster metadata and check
results (assets/metadata.py), so every figure is named once, next to the result that holds it."""

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Json:
    value: object


@dataclass(frozen=True)
class Url:
    url: str


@dataclass(frozen=True)
class Table:
    """A frame shown as a markdown table of its first ``rows`` rows."""

    frame: pl.DataFrame
    rows: int = 10


@dataclass(frozen=True)
class Sql:
    sql: str


@dataclass(frozen=True)
class Image:
    """A base64 PNG (ml/plots.py) shown inline under its title."""

    title: str
    png: str


@dataclass(frozen=True)
class Columns:
    """A frame's columns and their types."""

    frame: pl.DataFrame


@dataclass(frozen=True)
class XdmColumns:
    """A dataset's columns from its resolved XDM schema's top-level properties."""

    properties: dict


@dataclass(frozen=True)
class Check:
    """An asset check's outcome: its figures, and when it failed, why and what to change."""

    name: str
    passed: bool
    figures: dict = field(default_factory=dict)
    why: str = ""
    fix: str = ""
    severity: str = "error"  # error | warn
