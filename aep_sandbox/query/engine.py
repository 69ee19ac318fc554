"""Run translated SQL on DuckDB over the Parquet files of a sandbox's datasets.

Each dataset is a view named by its ``adobe/pqs/table`` tag over the files of its active batches.
Rows carry the system columns ``_acp_system_metadata`` (``acp_sourceBatchId``, ``commitBatchId``,
``ingestTime``) and ``_ACP_BATCHID``, as in AEP, so a query can read only the rows of given batches.
``CREATE TABLE ... AS``, ``INSERT INTO`` and ``DROP TABLE`` create, fill and delete Catalog
datasets, as they do in AEP. ``SNAPSHOT`` clauses, ``history_meta`` and ``table_exists`` are in
snapshots.py, anonymous blocks (``$$ BEGIN ... END $$`` with ``SET @v``) in blocks.py.
"""

import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from .. import lockdown
from ..catalog import CatalogBackend
from ..datalake import scan_sql
from ..names import quote_ident, quote_literal
from ..schema_registry import SchemaRegistryBackend
from ..store import Scope
from ..workers import staging_dir, this_worker
from ..xdm import RecordError, arrow_schema, conform, infer_properties, validation_contract
from . import accelerated, blocks, pg_catalog, snapshots
from .translate import TranslationError, parse, substitute, to_duckdb


class QueryError(Exception):
    """A statement failed; ``code`` is the PostgreSQL SQLSTATE AEP reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class QueryResult:
    row_count: int = 0
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # DuckDB type names, e.g. BIGINT, STRUCT(x INTEGER)
    rows: list[tuple] = field(default_factory=list)
    kind: str = "SELECT"  # the statement: SELECT, CREATE TABLE, INSERT, DROP TABLE
    datasets_written: list[str] = field(default_factory=list)


class Watchdog:
    """Interrupts a statement that runs past its guardrail, or that someone cancels."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout_s: float) -> None:
        self.con, self.timeout_s, self.reason = con, timeout_s, ""
        self._finished = threading.Event()
        self._timer = threading.Timer(timeout_s, self.stop, args=("timeout",))
        self._timer.daemon = True
        self._timer.start()

    def stop(self, reason: str = "cancel") -> None:
        """Interrupt now, and again until the statement has ended: an interrupt that lands between two of
        DuckDB's statements would otherwise be lost."""
        self.reason = self.reason or reason
        threading.Thread(target=self._interrupt_until_done, daemon=True).start()

    def _interrupt_until_done(self) -> None:
        while not self._finished.is_set():
            self.con.interrupt()
            self._finished.wait(0.1)

    def done(self) -> None:
        self._finished.set()
        self._timer.cancel()

    def error(self) -> "QueryError":
        if self.reason == "timeout":
            return QueryError("53400", f"The query ran past Query Service's maximum execution time of "
                                       f"{self.timeout_s:g} s and was stopped.")
        return QueryError("57014", "canceling statement due to user request")


class QueryEngine:
    def __init__(self, scope: Scope, platform, query_id: str | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> None:
        # ``cancelled``: whether Query Service has cancelled the query by now (its backend owns the query).
        self.scope, self.platform, self.query_id, self.cancelled = scope, platform, query_id, cancelled
        self.registry = SchemaRegistryBackend(scope, platform.credentials.tenant_id)
        self.catalog = CatalogBackend(scope, self.registry)

    def run(self, sql: str, params: dict | None = None, *, fetch: bool = False) -> QueryResult:
        return self.run_each(sql, params, fetch=fetch)[-1]

    def run_each(self, sql: str, params: dict | None = None, *, fetch: bool = False,
                 max_rows: int | None = None) -> list[QueryResult]:
        """Every statement's result, in order; SELECTs keep at most ``max_rows`` rows when fetched."""
        sql = substitute(sql, params)
        if blocks.is_block(sql):
            return blocks.run_block(sql, lambda s: self.run_each(s, fetch=fetch, max_rows=max_rows),
                                    self._first_value, lambda exc: isinstance(exc, QueryError))
        try:
            statements = (pg_catalog.parse_catalog(sql) if pg_catalog.reads_catalog(sql)
                          else parse(snapshots.rewrite_clauses(sql)))
        except (TranslationError, ValueError, sqlglot.errors.ParseError) as exc:
            raise QueryError("42601", str(exc)) from None
        if not statements:
            raise QueryError("42601", "The query has no statement.")
        return [self._run_one(statement, fetch, max_rows) for statement in statements]

    def _first_value(self, select: str):
        """The first column of the first row of a SELECT (``SET @v = SELECT ...`` in a block)."""
        result = self.run_each(select, fetch=True, max_rows=1)[-1]
        return result.rows[0][0] if result.rows else None

    def _connect(self, statement: exp.Expression) -> duckdb.DuckDBPyConnection:
        try:
            lockdown.refuse_outside_access(statement)
        except lockdown.Refused as exc:
            raise QueryError("42501", str(exc)) from None
        con = lockdown.locked_connection(self.platform.lake.datasets_dir(self.scope.org, self.scope.sandbox))
        if pg_catalog.is_catalog_query(statement):
            pg_catalog.mirror(con, self._table_schemas())
            return con
        if accelerated.reads_store(statement):
            accelerated.attach(con, self.scope, self.platform)
        ctes = {c.alias_or_name.lower() for c in statement.find_all(exp.CTE)}
        registered: set[str] = set()
        for table in statement.find_all(exp.Table):
            name = table.name.lower()
            if name in ctes or name in registered or not name or table.catalog.lower() == accelerated.CATALOG:
                continue
            if self._register_special(con, name):
                registered.add(name)
                continue
            ds = self.catalog.dataset_by_table(name)
            if ds is None:
                if isinstance(statement, exp.Create) and table is statement.this.find(exp.Table):
                    continue
                if isinstance(statement, exp.Drop):
                    continue
                raise QueryError("42P01", f"Table '{name}' does not exist. Tables are named by the dataset's "
                                          "adobe/pqs/table tag; SHOW TABLES lists them.")
            self._register(con, name, ds)
            registered.add(name)
        return con

    def _table_schemas(self) -> dict:
        """Every dataset's table and the Arrow schema of its columns."""
        out = {}
        for ds in self.catalog.datasets():
            for table in ds.get("tags", {}).get("adobe/pqs/table", []):
                props, _ = self.registry.resolve(self.registry.get(ds["schemaRef"]["id"], "schemas"))
                out[table] = arrow_schema(props)
        return out

    def _require(self, table: str) -> dict:
        ds = self.catalog.dataset_by_table(table)
        if ds is None:
            raise QueryError("42P01", f"Table '{table}' does not exist; SHOW TABLES lists the tables.")
        return ds

    def _register_special(self, con: duckdb.DuckDBPyConnection, name: str) -> bool:
        """Snapshot views (``t__snapshot__a__b``) and ``history_meta`` results."""
        if name.startswith(snapshots.HISTORY_TABLE):
            ds = self._require(name.removeprefix(snapshots.HISTORY_TABLE))
            con.register(name, snapshots.history_rows(self.catalog.active_batches(ds["id"])))
            return True
        match = snapshots.SNAPSHOT_TABLE.match(name)
        if not match:
            return False
        ds = self._require(match.group(1))
        batches = snapshots.in_range(self.catalog.active_batches(ds["id"]), match.group(2), match.group(3))
        self._register(con, name, ds, batches)
        return True

    def _register(self, con: duckdb.DuckDBPyConnection, name: str, ds: dict,
                  batches: list[dict] | None = None) -> None:
        """The dataset's table: its active batches' rows (or only ``batches``), each with the system columns
        Query Service adds (``_acp_system_metadata.acp_sourceBatchId``, ``_ACP_BATCHID``)."""
        scans = []
        for batch in self.catalog.active_batches(ds["id"]) if batches is None else batches:
            files = self.platform.lake.batch_files(self.scope.org, self.scope.sandbox, ds["id"], batch["id"])
            if files:
                scans.append(f"SELECT *, {system_columns(batch)} FROM {scan_sql(files)}")
        if scans:
            con.execute(f'CREATE VIEW {quote_ident(name)} AS {" UNION ALL BY NAME ".join(scans)}')
        else:
            props, _ = self.registry.resolve(self.registry.get(ds["schemaRef"]["id"], "schemas"))
            con.register(f"{name}__empty", arrow_schema(props).empty_table())
            # An empty dataset is a table with its schema's columns and Query Service's system columns, no rows.
            con.execute(f'CREATE VIEW {quote_ident(name)} AS SELECT *, {system_columns(NO_BATCH)} '
                        f'FROM {quote_ident(name + "__empty")}')

    def _run_one(self, statement: exp.Expression, fetch: bool, max_rows: int | None) -> QueryResult:
        try:
            accelerated.refuse_writes(statement)
        except PermissionError as exc:
            raise QueryError("42501", str(exc)) from None
        try:
            statement, _ = snapshots.rewrite_functions(
                statement, lambda t: self.catalog.dataset_by_table(t) is not None)
        except ValueError as exc:
            raise QueryError("42601", str(exc)) from None
        try:
            con = self._connect(statement)
        except duckdb.Error as exc:
            raise QueryError(_sqlstate(exc), str(exc).split("\n")[0]) from None
        batch = isinstance(statement, (exp.Create, exp.Insert))
        config = self.platform.config
        watchdog = Watchdog(con, config.batch_timeout_s if batch else config.adhoc_timeout_s)
        if self.query_id:
            self.platform.running_queries[self.query_id] = watchdog
            if self.cancelled():
                watchdog.stop()  # cancelled between its start and now: the canceller found nothing to stop
        try:
            if watchdog.reason:
                raise watchdog.error()
            if isinstance(statement, exp.Create) and statement.kind == "TABLE":
                return self._ctas(con, statement)
            if isinstance(statement, exp.Insert):
                return self._insert(con, statement)
            if isinstance(statement, exp.Drop) and statement.kind == "TABLE":
                return self._drop(statement)
            if isinstance(statement, exp.Query):
                sql = to_duckdb(statement)
                sql = pg_catalog.unqualify(sql) if pg_catalog.is_catalog_query(statement) else sql
                if not fetch:  # a REST query returns no rows, only their count: DuckDB counts, Python holds none
                    described = con.sql(sql)
                    count = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
                    columns, types = described.columns, [str(t) for t in described.types]
                    rows = []
                else:
                    cur = con.execute(sql)
                    columns, types = [d[0] for d in cur.description], [str(d[1]) for d in cur.description]
                    rows = cur.fetchall() if max_rows is None else cur.fetchmany(max_rows)
                    count = len(rows)
                if accelerated.reads_store(statement):  # the accelerated store names columns in upper case
                    columns = [c.upper() for c in columns]
                return QueryResult(row_count=count, columns=columns, types=types, rows=rows)
            raise QueryError("0A000", f"Statement {statement.key.upper()} is not supported by the sandbox yet.")
        except duckdb.InterruptException:
            raise watchdog.error() from None
        except duckdb.Error as exc:
            raise QueryError(_sqlstate(exc), str(exc).split("\n")[0]) from None
        finally:
            watchdog.done()
            if self.query_id:
                self.platform.running_queries.pop(self.query_id, None)
            con.close()

    def _stage(self, con, select: exp.Expression) -> Path:
        """Write the SELECT's rows to a staging folder of this process's; no dataset sees them yet."""
        staged = staging_dir(self.platform.lake.datasets_dir(self.scope.org, self.scope.sandbox))
        try:
            con.execute(f"COPY ({_rows_sql(con, select)}) TO {quote_literal(str(staged / 'part-00000.parquet'))} "
                        "(FORMAT parquet, COMPRESSION zstd)")
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged

    def _commit(self, staged: Path, ds_id: str) -> tuple[str, int]:
        """The staged rows become one new successful batch of ``ds_id``, all at once."""
        # The batch id names the lake folder, so Catalog makes the batch first, staging; it turns visible once the
        # folder is in place (a crash in between leaves a staging batch, which recovery fails).
        part = staged / "part-00000.parquet"
        rows, size = pq.ParquetFile(part).metadata.num_rows, part.stat().st_size
        batch = self.catalog.new_batch(ds_id, input_format={"format": "parquet"}, client="query-service",
                                       status="staging", worker=this_worker())
        out = self.platform.lake.batch_dir(self.scope.org, self.scope.sandbox, ds_id, batch["id"])
        out.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(out)
        self.catalog.batch_succeeded(batch["id"], {"inputRecordCount": rows, "outputRecordCount": rows,
                                                   "recordsWritten": rows, "outputByteSize": size},
                                     started=batch["created"], worker=None)
        return batch["id"], rows

    def _ctas(self, con, statement: exp.Create) -> QueryResult:
        name = statement.this.find(exp.Table).name.lower()
        select = statement.expression
        if select is None:
            raise QueryError("0A000", "CREATE TABLE needs AS SELECT in Query Service.")
        if isinstance(select, exp.Subquery):
            select = select.this
        if self.catalog.dataset_by_table(name) is not None:
            if statement.args.get("exists"):
                return QueryResult(kind="CREATE TABLE")
            raise QueryError("42P07", f"Table '{name}' already exists. Use CREATE TABLE IF NOT EXISTS, "
                                      "INSERT INTO, or DROP TABLE first.")
        # CTAS is atomic: the rows are written first, and the table appears in Catalog only with them. A crash
        # in between leaves a dataset marked with this process, which recovery removes (recovery.py).
        empty = con.sql(f"SELECT * FROM ({_rows_sql(con, select)}) LIMIT 0").to_arrow_table()
        staged = self._stage(con, select)
        try:
            schema = self.registry.create_adhoc_schema(f"{name} (ad hoc, {secrets.token_hex(4)})",
                                                       infer_properties(empty.schema))
            ds = self.catalog.create_dataset({"name": name, "schemaRef": {"id": schema["$id"]}},
                                             table=name, client="query-service")
            self.catalog.touch_dataset(ds["id"], ctasWorker=this_worker())
            _, rows = self._commit(staged, ds["id"])
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return QueryResult(row_count=rows, datasets_written=[ds["id"]], kind="CREATE TABLE")

    def _insert(self, con, statement: exp.Insert) -> QueryResult:
        name = statement.this.find(exp.Table).name.lower()
        ds = self.catalog.dataset_by_table(name)
        if ds is None:
            raise QueryError("42P01", f"Table '{name}' does not exist; create it with CREATE TABLE ... AS first.")
        staged = self._stage(con, statement.expression)
        try:
            self._validate(staged, ds, name)
            _, rows = self._commit(staged, ds["id"])
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return QueryResult(row_count=rows, datasets_written=[ds["id"]], kind="INSERT")

    def _validate(self, staged: Path, ds: dict, name: str) -> None:
        """The staged rows checked against the dataset's XDM schema as batch ingestion checks a file, and
        rewritten in the schema's types; a row that does not conform fails the INSERT, which writes nothing."""
        part = staged / "part-00000.parquet"
        props, required, ident_path = validation_contract(self.registry, ds)
        source = pq.ParquetFile(part)
        out = staged / "conformed.parquet"
        writer = None
        try:
            for i in range(source.num_row_groups):
                try:
                    table = conform(source.read_row_group(i), props, required, ident_path)
                except RecordError as exc:
                    raise QueryError("22000", f"INSERT INTO {name}: the rows do not conform to the dataset's XDM "
                                              f"schema ({exc.code}): {exc.description}") from None
                writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        if writer is not None:
            out.replace(part)

    def _drop(self, statement: exp.Drop) -> QueryResult:
        for table in statement.find_all(exp.Table):
            name = table.name.lower()
            ds = self.catalog.dataset_by_table(name)
            if ds is None:
                if statement.args.get("exists"):
                    continue
                raise QueryError("42P01", f"Table '{name}' does not exist.")
            self.catalog.delete_dataset(ds["id"], self.platform.lake)
        return QueryResult(kind="DROP TABLE")


SYSTEM_COLUMNS = ("_acp_system_metadata", "_acp_batchid")


def _rows_sql(con: duckdb.DuckDBPyConnection, select: exp.Expression) -> str:
    """The SELECT's rows without the system columns a ``SELECT *`` picks up: the dataset written gets its own."""
    sql = to_duckdb(select)
    names = [d[0] for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    system = [n for n in names if n.lower() in SYSTEM_COLUMNS]
    if not system:
        return sql
    return f"SELECT * EXCLUDE ({', '.join(quote_ident(n) for n in system)}) FROM ({sql})"


NO_BATCH = {"id": "", "completed": 0}


def system_columns(batch: dict) -> str:
    """The columns Query Service gives every row of ``batch``, as SQL select items."""
    batch_id = quote_literal(batch["id"])
    return (f"struct_pack(acp_sourceBatchId := {batch_id}, commitBatchId := {batch_id}, "
            f"ingestTime := {int(batch.get('completed') or 0)}::BIGINT) AS _acp_system_metadata, "
            f"{batch_id} AS _ACP_BATCHID")


def _sqlstate(exc: duckdb.Error) -> str:
    if isinstance(exc, duckdb.CatalogException):
        return "42P01"
    if isinstance(exc, duckdb.BinderException):
        return "42703"
    if isinstance(exc, duckdb.ParserException):
        return "42601"
    if isinstance(exc, duckdb.ConversionException):
        return "22018"
    return "XX000"
