"""What BI tools and drivers ask a PostgreSQL server at connect time: ``pg_catalog`` and
``information_schema``.

A statement that reads them runs on a mirror: every dataset of the sandbox as an empty table with its
columns and types, in a DuckDB connection whose own ``pg_catalog`` and ``information_schema`` views then
describe them (psql's ``\\dt`` and ``\\d``, SQLAlchemy's ``inspect()``, pandas through SQLAlchemy). The
functions DuckDB lacks are defined as macros with PostgreSQL's answers for a server with one user and
no comments, collations or ACLs.
"""

import re

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..names import quote_ident

SCHEMAS = {"pg_catalog", "information_schema"}
# Functions clients call that DuckDB's pg_catalog does not define; their arguments are ignored.
MACROS = {
    "pg_get_userbyid": "(id) AS 'aep'",
    "obj_description": "(oid, catalog := NULL) AS NULL::VARCHAR",
    "col_description": "(oid, col) AS NULL::VARCHAR",
    "shobj_description": "(oid, catalog) AS NULL::VARCHAR",
    "pg_encoding_to_char": "(enc) AS 'UTF8'",
    "pg_get_indexdef": "(oid, col := 0, pretty := false) AS NULL::VARCHAR",
    "pg_get_constraintdef": "(oid, pretty := false) AS NULL::VARCHAR",
    "pg_get_statisticsobjdef_columns": "(oid) AS NULL::VARCHAR",
    "pg_relation_is_publishable": "(oid) AS false",
    "pg_get_serial_sequence": "(tab, col) AS NULL::VARCHAR",
    "pg_collation_is_visible": "(oid) AS true",
    "array_upper": "(arr, dim) AS len(arr)",
    "pg_type_is_visible": "(oid) AS true",
}
# Columns of PostgreSQL's catalogs that DuckDB's pg_catalog views lack, with the value a server with no row
# security, one collation provider and no ACLs would show. A statement reads ``aep_<table>`` in their place.
WIDENED = {
    "pg_class": {"relforcerowsecurity": "false"},
    "pg_collation": {"collnamespace": "0::BIGINT", "collowner": "0::BIGINT", "collprovider": "'d'",
                     "collisdeterministic": "true", "collencoding": "-1", "collcollate": "NULL::VARCHAR",
                     "collctype": "NULL::VARCHAR"},
}
# DuckDB's format_type() names types its own way; clients expect PostgreSQL's names. Nested types show as
# json, which is how Query Service hands them to PostgreSQL clients (SET auto_to_json=true).
PG_TYPE_NAMES = {"varchar": "character varying", "int8": "bigint", "int4": "integer", "int2": "smallint",
                 "float8": "double precision", "float4": "real", "bool": "boolean",
                 "timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
                 "blob": "bytea", "struct": "json", "list": "json", "map": "json", "union": "json"}
FORMAT_TYPE = re.compile(r"\bformat_type\s*\(", re.I)
# Catalogs DuckDB does not have at all, empty as on a server with no row security policies, extended
# statistics, publications or table inheritance.
# What a client reads of the server's settings, in pg_settings and SHOW: PostgreSQL's, never DuckDB's own (which
# name the sandbox's data folder).
PG_SETTINGS = {"standard_conforming_strings": "on", "server_version": "15.0", "server_encoding": "UTF8",
               "client_encoding": "UTF8", "datestyle": "ISO, MDY", "timezone": "UTC", "search_path": "main",
               "integer_datetimes": "on", "max_identifier_length": "63", "transaction_isolation": "read committed"}
MISSING = {
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR, short_desc VARCHAR, "
                   "context VARCHAR, vartype VARCHAR, source VARCHAR",
    "pg_policy": "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN, "
                 "polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxowner BIGINT, "
                        "stxstattarget INTEGER, stxkeys SMALLINT[], stxkind VARCHAR[], stxexprs VARCHAR",
    "pg_publication": "oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN, pubinsert BOOLEAN, "
                      "pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgparentid BIGINT, tgname VARCHAR, tgfoid BIGINT, tgtype SMALLINT, "
                  "tgenabled VARCHAR, tgisinternal BOOLEAN",
    "pg_roles": "oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolcanlogin BOOLEAN",
    "pg_rewrite": "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR, ev_enabled VARCHAR, "
                  "is_instead BOOLEAN",
}
FUNCTION_QUALIFIER = re.compile(r"\bpg_catalog\s*\.\s*(?=[A-Za-z_]\w*\s*\()", re.I)
# PostgreSQL's catalog relations, which clients also name without the schema (a dataset may be called pg_x).
CATALOG_RELATIONS = ("pg_class|pg_type|pg_namespace|pg_attribute|pg_attrdef|pg_am|pg_index|pg_indexes|pg_constraint|"
                     "pg_description|pg_collation|pg_database|pg_proc|pg_roles|pg_user|pg_settings|pg_tables|"
                     "pg_views|pg_matviews|pg_sequence|pg_sequences|pg_enum|pg_depend|pg_inherits|pg_policy|"
                     "pg_trigger|pg_rewrite|pg_tablespace|pg_statistic_ext|pg_publication|pg_publication_rel|"
                     "pg_publication_namespace|pg_prepared_statements|pg_extension|pg_range|pg_stat_activity")
CATALOG_TEXT = re.compile(rf"\b(?:pg_catalog|information_schema)\s*\.|\b(?:FROM|JOIN)\s+(?:{CATALOG_RELATIONS})\b",
                          re.I)
CATALOG_NAMES = frozenset(CATALOG_RELATIONS.split("|"))
# psql's spelling of operators and collations, which DuckDB reads without the qualifier.
OPERATOR = re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*]+)\s*\)", re.I)
COLLATE_DEFAULT = re.compile(r"\s+COLLATE\s+pg_catalog\s*\.\s*\"?default\"?", re.I)
# Object identifier types: DuckDB's catalog keys are integers.
OID_TYPES = re.compile(r"\bAS\s+(?:REGCLASS|REGTYPE|REGPROC|REGPROCEDURE|REGNAMESPACE|REGOPER|OID)\s*\)", re.I)
JSON_BUILD_OBJECT = re.compile(r"\bjson_build_object\s*\(", re.I)
TYPE_QUALIFIER = re.compile(r"\bAS\s+pg_catalog\s*\.\s*", re.I)
VERSION_CALL = re.compile(r"\bversion\s*\(\s*\)", re.I)
SERVER_VERSION = "PostgreSQL 15.0 (AEP Query Service, local sandbox)"


def reads_catalog(sql: str) -> bool:
    """Whether a statement's text reads the system catalogs; such statements are parsed as PostgreSQL."""
    return bool(CATALOG_TEXT.search(sql))


def parse_catalog(sql: str) -> list[exp.Expression]:
    sql = COLLATE_DEFAULT.sub("", OPERATOR.sub(r"\1", sql))
    return [s.transform(_rewrite) for s in sqlglot.parse(sql, read="postgres") if s is not None]


def _rewrite(node: exp.Expression) -> exp.Expression:
    """``pg_catalog.pg_class.relname`` as ``pg_class.relname`` (DuckDB binds schema-qualified columns only at
    the top level, and a table's name is its alias anyway), and the widened catalogs in place of DuckDB's."""
    if isinstance(node, exp.Column) and node.args.get("db"):
        node.set("db", None)
        node.set("catalog", None)
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func) and node.db.lower() == "pg_catalog":
        node.set("db", None)  # pg_catalog.generate_series(...) as generate_series(...)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "pg_get_expr" and len(node.expressions) == 3:
        node.set("expressions", node.expressions[:2])  # the 'pretty' flag: DuckDB's takes two arguments
    if (isinstance(node, exp.Table) and node.name.lower() in (*WIDENED, *MISSING)
            and node.db.lower() in ("", "pg_catalog")):
        widened = exp.to_table(f"aep_{node.name.lower()}")
        widened.set("alias", node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name)))
        return widened
    return node


def is_catalog_query(statement: exp.Expression) -> bool:
    """Whether the statement reads the system catalogs (``pg_catalog.*``, ``information_schema.*``, one of
    PostgreSQL's catalog relations by its bare name, or a ``pg_catalog.`` function such as ``version()``)."""
    for dot in statement.find_all(exp.Dot):
        if isinstance(dot.this, exp.Column | exp.Identifier) and dot.this.name.lower() == "pg_catalog":
            return True
    for table in statement.find_all(exp.Table):
        if table.db.lower() in SCHEMAS or (not table.db and table.name.lower() in CATALOG_NAMES):
            return True
        if not table.db and table.name.lower().removeprefix("aep_") in (*WIDENED, *MISSING):
            return True  # a catalog relation already rewritten to its widened stand-in
    return False


def mirror(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Schema]) -> None:
    """Every dataset as an empty table of its columns, and the missing functions as macros."""
    for name, schema in tables.items():
        con.register("__mirror", schema.empty_table())
        con.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM __mirror")
        con.unregister("__mirror")
    for table, columns in WIDENED.items():
        extra = ", ".join(f"{value} AS {column}" for column, value in columns.items())
        con.execute(f"CREATE VIEW aep_{table} AS SELECT *, {extra} FROM pg_catalog.{table}")
    for table, columns in MISSING.items():
        con.execute(f"CREATE TABLE aep_{table} ({columns})")
    con.executemany("INSERT INTO aep_pg_settings VALUES (?, ?, NULL, 'Preset Options', NULL, 'internal', "
                    "'string', 'default')", list(PG_SETTINGS.items()))
    cases = " ".join(f"WHEN '{duck}' THEN '{pg}'" for duck, pg in PG_TYPE_NAMES.items())
    con.execute(f"CREATE MACRO aep_format_type(t, m) AS CASE format_type(t, m) {cases} ELSE format_type(t, m) END")
    for name, body in MACROS.items():
        if not _function_exists(con, name):
            con.execute(f"CREATE MACRO {name}{body}")


def _function_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [name]).fetchone()[0])


def unqualify(sql: str) -> str:
    """``pg_catalog.f(...)`` as ``f(...)``: DuckDB finds its own pg_catalog functions and the macros above
    without the qualifier, but not the macros with it."""
    sql = OID_TYPES.sub("AS BIGINT)", TYPE_QUALIFIER.sub("AS ", FUNCTION_QUALIFIER.sub("", sql)))
    sql = JSON_BUILD_OBJECT.sub("json_object(", sql)
    sql = FORMAT_TYPE.sub("aep_format_type(", sql)
    return VERSION_CALL.sub(f"'{SERVER_VERSION}'", sql)
