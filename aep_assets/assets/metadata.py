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
