"""Metadata helpers: markdown previews, column schemas, SQL blocks."""

import dagster as dg
import polars as pl


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
