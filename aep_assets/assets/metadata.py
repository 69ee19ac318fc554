"""Dagster metadata from what a stage's result shows of itself (pipeline/report.py), and the helpers behind it."""

import dagster as dg
import polars as pl

from ..ml.plots import markdown_image
from ..pipeline import report
from .checks import check_result


def md_table(frame: pl.DataFrame, rows: int = 10) -> dg.MetadataValue:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=2000):
        return dg.MetadataValue.md(str(frame.head(rows)))


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


def sql_md(sql: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"```sql\n{sql.strip()}\n```")


def xdm_column_schema(properties: dict) -> dg.TableSchema:
    """A table schema from a resolved (``xed-full``) XDM schema: one column per top-level field."""
    def kind(spec: dict) -> str:
        if spec.get("type") == "object":
            return "struct<" + ", ".join(spec.get("properties", {})) + ">" if spec.get("properties") else "object"
        return spec.get("format") or spec.get("type", "string")

    return dg.TableSchema(columns=[dg.TableColumn(name, kind(spec), description=spec.get("description"))
                                   for name, spec in properties.items()])


def metadata_value(value):
    """One value of a result's metadata as Dagster shows it; plain numbers and strings as they are."""
    match value:
        case report.Markdown(text):
            return dg.MetadataValue.md(text)
        case report.Json(data):
            return dg.MetadataValue.json(data)
        case report.Url(url):
            return dg.MetadataValue.url(url)
        case report.Table(frame, rows):
            return md_table(frame, rows)
        case report.Sql(sql):
            return sql_md(sql)
        case report.Image(title, png):
            return dg.MetadataValue.md(markdown_image(title, png))
        case report.Columns(frame):
            return column_schema(frame)
        case report.XdmColumns(properties):
            return xdm_column_schema(properties)
    return value


def dagster_metadata(metadata: dict) -> dict:
    return {key: metadata_value(value) for key, value in metadata.items()}


def materialized(context: dg.AssetExecutionContext, metadata: dict, checks: list[report.Check] = ()
                 ) -> dg.MaterializeResult:
    """A stage's result as the asset's materialization: its metadata and its checks."""
    return dg.MaterializeResult(
        metadata=dagster_metadata(metadata),
        check_results=[check_result(context, c.name, c.passed, dagster_metadata(c.figures), why=c.why, fix=c.fix,
                                    severity=c.severity) for c in checks])
