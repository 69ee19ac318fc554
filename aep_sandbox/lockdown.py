"""Query Service runs only SQL over the caller's sandbox's datasets.

Two locks. The SQL is refused, with SQLSTATE 42501, when it names a table function or a function that
reads files (``read_csv``, ``read_text``, ``glob``, ...) or a table that is a file path: the only tables
are the sandbox's datasets, which the engine reads through paths it builds itself. And every DuckDB
connection the engine opens has external access disabled except for that sandbox's own dataset folder,
extension auto-install and auto-load off, and its configuration locked, so a query that slipped past
the first lock still cannot open a file, install an extension or turn the lock off.
"""

import os
from pathlib import Path

import duckdb
from sqlglot import exp

from .names import quote_literal

FILE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto", "read_ndjson",
    "read_json_objects", "read_ndjson_objects", "read_ndjson_auto", "read_text", "read_blob", "read_xlsx", "glob",
    "sniff_csv", "parquet_metadata", "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata",
    "parquet_bloom_probe", "getenv", "query", "query_table", "iceberg_scan", "iceberg_metadata", "delta_scan",
    "sqlite_scan", "postgres_scan", "mysql_scan", "load_aws_credentials", "duckdb_secrets", "duckdb_settings",
    "duckdb_extensions", "duckdb_databases", "pragma_database_list", "current_setting", "read_ipc", "arrow_scan",
})


# Table functions that only generate rows (Spark SQL has them too): they read nothing.
ROW_GENERATORS = frozenset({"range", "generate_series", "exploding_generate_series"})


class Refused(Exception):
    """What the SQL asked for is not a dataset of the caller's sandbox."""


def refuse_outside_access(statement: exp.Expression) -> None:
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Func) and _name(table.this) in ROW_GENERATORS:
            continue
        if not isinstance(table.this, exp.Identifier):
            raise Refused("Table functions are not available in Query Service; query the sandbox's datasets by "
                          "their table names (SHOW TABLES lists them).")
        if "/" in table.name or "\\" in table.name or "." in table.name and not table.db:
            raise Refused(f"'{table.name}' is not a table of this sandbox; query datasets by their table names.")
    for func in statement.find_all(exp.Func):
        name = _name(func)
        if name in FILE_FUNCTIONS or isinstance(func, (exp.ReadCSV, exp.ReadParquet)):
            raise Refused(f"Function {name}() reads outside the sandbox's datasets and is not available in "
                          "Query Service.")


def _name(func: exp.Func) -> str:
    return (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()


MEMORY_LIMIT = os.environ.get("AEP_SANDBOX_QUERY_MEMORY", "4GB")


def locked_connection(*allowed: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read and write files only under the ``allowed`` folders. A query holds at
    most ``AEP_SANDBOX_QUERY_MEMORY`` (4GB) and spills the rest to disk under the first folder, as a Query
    Service cluster would rather than take the machine's memory."""
    for folder in allowed:
        folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                 "threads": 2, "memory_limit": MEMORY_LIMIT,
                                 "temp_directory": str(allowed[0] / ".spill")})
    con.execute("SET TimeZone = 'UTC'")
    # In this order: the allowed folders can only be set while external access is still on.
    con.execute(f"SET allowed_directories = [{', '.join(quote_literal(str(f.resolve()) + '/') for f in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
