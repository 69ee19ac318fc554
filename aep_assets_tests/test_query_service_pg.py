"""Query Service's PostgreSQL endpoint, from psycopg 3 and psql (reference/aep_api.md §7.1, §7.2)."""

import os
import shutil
import subprocess

import psycopg
import pyarrow as pa
import pytest

from aep_assets.pipeline.ingest import replace_dataset_rows
from aep_assets.pipeline.platform import ensure_schemas


@pytest.fixture(scope="module")
def params(sandbox):
    from .conftest import client_for

    client = client_for(sandbox)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    ds, _ = client.catalog.ensure_dataset("pg wire events", platform.schema_id("event"))
    replace_dataset_rows(client, ds["id"], [pa.table({
        "_id": ["e1", "e2", "e3"],
        "timestamp": pa.array([0, 60_000_000, 120_000_000], pa.timestamp("us", tz="UTC")),
        "eventType": ["web.webpagedetails.pageViews", "commerce.purchases", "web.webpagedetails.pageViews"],
        f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1", "u2", "u1"])], names=["userid"]),
    })])
    found = client.session.json("GET", "/data/foundation/query/connection_parameters")
    return {**found, "table": client.catalog.table_name(client.catalog.get_dataset(ds["id"])), "tenant": tenant,
            "client": client}


def _connect(p, **overrides):
    args = {"host": p["host"], "port": p["port"], "dbname": p["dbName"], "user": p["username"],
            "password": p["token"], "sslmode": "prefer", **overrides}
    return psycopg.connect(**args)


def test_connection_parameters_point_at_the_endpoint(params, sandbox):
    # §7.1: username is the org id, dbName {sandbox}:all, the token is the password; the port is not fixed.
    assert params["username"] == sandbox.credentials.org_id and params["dbName"] == "prod:all"
    assert params["port"] == sandbox.pg_port and params["version"] == 1 and params["token"]


def test_show_tables_lists_datasets_by_their_table_name(params):
    # §7.2: SHOW TABLES returns name, dataSetId, dataSet, description, resolved.
    with _connect(params) as conn:
        cur = conn.execute("SHOW TABLES")
        assert [c.name for c in cur.description] == ["name", "dataSetId", "dataSet", "description", "resolved"]
        assert (params["table"], "pg wire events") in {(r[0], r[2]) for r in cur.fetchall()}


def test_select_with_struct_access_types_and_bound_parameters(params):
    t, table = params["tenant"], params["table"]
    with _connect(params) as conn:
        cur = conn.execute(f"SELECT _{t}.userid AS userid, count(*) AS n, max(timestamp) AS last FROM {table} "
                           "WHERE eventType = %s GROUP BY 1 ORDER BY 1", ["web.webpagedetails.pageViews"])
        assert [(c.name, c.type_code) for c in cur.description] == [("userid", 25), ("n", 20), ("last", 1184)]
        rows = cur.fetchall()
        assert [(r[0], r[1]) for r in rows] == [("u1", 2)] and rows[0][2].isoformat() == "1970-01-01T00:02:00+00:00"


def test_auto_to_json_returns_structs_as_json(params):
    t, table = params["tenant"], params["table"]
    with _connect(params, autocommit=True) as conn:
        assert conn.execute(f"SELECT _{t} FROM {table} ORDER BY _id LIMIT 1").fetchone() == ("(u1)",)
        conn.execute("SET auto_to_json=true")
        assert conn.execute(f"SELECT _{t} FROM {table} ORDER BY _id LIMIT 1").fetchone() == ('{"userid": "u1"}',)


def test_results_are_capped_at_50000_rows(params):
    with _connect(params) as conn:
        assert len(conn.execute("SELECT * FROM range(60000)").fetchall()) == 50_000


def test_errors_carry_sqlstate_codes(params):
    with _connect(params, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable, match="SHOW TABLES lists them"):
            conn.execute("SELECT * FROM no_such_table")
        with pytest.raises(psycopg.Error) as syntax:
            conn.execute("SELEC 1")
        assert syntax.value.sqlstate == "42601"
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)  # the session survives its errors


def test_ctas_over_the_wire_creates_a_catalog_dataset(params):
    t, table = params["tenant"], params["table"]
    with _connect(params, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE pg_wire_ctas AS SELECT _{t}.userid AS userid, count(*) AS n FROM {table} "
                     "GROUP BY 1")
        assert conn.execute("SELECT sum(n) FROM pg_wire_ctas").fetchone() == (3,)
    assert params["client"].catalog.find_dataset("pg_wire_ctas") is not None


def test_a_wrong_token_or_database_is_refused(params):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(params, password="not-a-token")
    with pytest.raises(psycopg.OperationalError, match="'prod:all'"):
        _connect(params, dbname="prod")


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed (.ci/run installs it)")
def test_psql_runs_queries_and_reports_errors(params):
    env = {**os.environ, "PGPASSWORD": params["token"], "PGGSSENCMODE": "disable", "PGSSLMODE": "prefer"}
    base = ["psql", "-h", params["host"], "-p", str(params["port"]), "-U", params["username"], "-d",
            params["dbName"], "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    ok = subprocess.run([*base, "-c", f"SELECT count(*) FROM {params['table']}"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.strip() == "3"
    bad = subprocess.run([*base, "-c", "SELECT * FROM no_such_table"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
