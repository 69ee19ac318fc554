"""Query Service's PostgreSQL endpoint, from psycopg 3 and psql (reference/aep_api.md §7.1, §7.2)."""

import io
import os
import shutil
import socket
import socketserver
import subprocess

import psycopg
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aep_assets.pipeline.schemas import ensure_schemas


@pytest.fixture(scope="module")
def params(sandbox):
    from .conftest import client_for, replace_rows

    client = client_for(sandbox)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    ds, _ = client.catalog.ensure_dataset("pg wire events", platform.schema_id("event"))
    replace_rows(client, ds["id"], [pa.table({
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


def test_psycopg2_as_aepp_and_the_notebooks_use_it(params):
    # aepp's QueryService connects with psycopg2 and sslmode=allow; reads go through the simple protocol.
    conn = psycopg2.connect(host=params["host"], port=params["port"], dbname=params["dbName"],
                            user=params["username"], password=params["token"], sslmode="allow")
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT eventType, count(*) AS n FROM {params['table']} GROUP BY eventType ORDER BY 1")
        assert cur.fetchall() == [("commerce.purchases", 1), ("web.webpagedetails.pageViews", 2)]
        assert [d.name for d in cur.description] == ["eventType", "n"]
        cur.execute("SELECT %s AS x", ("it's quoted",))
        assert cur.fetchone() == ("it's quoted",)
    finally:
        conn.close()


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


@pytest.fixture(scope="module")
def three_batches(params):
    client, tenant = params["client"], params["tenant"]
    platform = ensure_schemas(client)
    ds = client.catalog.create_dataset("snapshot events", platform.schema_id("event"))
    for i, n in enumerate((1, 2, 3)):
        batch = client.ingestion.create_batch(ds["id"], "parquet")
        table = pa.table({"_id": [f"s{i}-{k}" for k in range(n)],
                          "timestamp": pa.array([i] * n, pa.timestamp("us", tz="UTC")),
                          f"_{tenant}": pa.StructArray.from_arrays([pa.array([f"u{i}"] * n)], names=["userid"])})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        client.ingestion.upload_file(batch["id"], ds["id"], "s.parquet", buf.getvalue())
        client.ingestion.complete_batch(batch["id"])
        client.ingestion.wait_for_batch(batch["id"], timeout_s=30)
    return client.catalog.table_name(client.catalog.get_dataset(ds["id"]))


def test_history_meta_lists_one_snapshot_per_batch(params, three_batches):
    # §7.2 incremental reads: history_meta('t') has snapshot_id, parent_id, is_current, snapshot_generation.
    with _connect(params, autocommit=True) as conn:
        rows = conn.execute(f"SELECT snapshot_id, parent_id, is_current, snapshot_generation, output_record_count "
                            f"FROM (SELECT history_meta('{three_batches}')) ORDER BY snapshot_generation").fetchall()
        assert [(r[2], r[3], r[4]) for r in rows] == [(False, 1, 1), (False, 2, 2), (True, 3, 3)]
        assert rows[0][1] is None and rows[1][1] == rows[0][0] and rows[0][0] < rows[1][0] < rows[2][0]
        current = conn.execute(f"SELECT snapshot_id FROM (SELECT history_meta('{three_batches}')) "
                               "WHERE is_current = true").fetchone()[0]
        assert current == rows[2][0]


def test_snapshot_clauses_read_the_batches_between_snapshots(params, three_batches):
    t = three_batches
    with _connect(params, autocommit=True) as conn:
        first, second, _ = [r[0] for r in conn.execute(
            f"SELECT snapshot_id FROM (SELECT history_meta('{t}')) ORDER BY snapshot_id").fetchall()]

        def count(clause: str) -> int:
            return conn.execute(f"SELECT count(*) FROM {t} SNAPSHOT {clause}").fetchone()[0]

        assert count(f"SINCE {first}") == 5  # exclusive of the start: batches 2 and 3
        assert count(f"AS OF {first}") == 1  # inclusive of the end
        assert count(f"BETWEEN {first} AND {second}") == 2
        assert count(f"BETWEEN 'HEAD' AND {first}") == 1 and count(f"BETWEEN {second} AND 'TAIL'") == 3
        assert conn.execute(f"SELECT table_exists('{t}'), table_exists('nope')").fetchone() == ("t", "f")
        with pytest.raises(psycopg.Error) as bad:
            conn.execute(f"SELECT count(*) FROM {t} SNAPSHOT SINCE yesterday")
        assert bad.value.sqlstate == "42601"


def test_an_incremental_ctas_over_rest_reads_only_new_batches(params, three_batches):
    client = params["client"]
    with _connect(params, autocommit=True) as conn:
        first = conn.execute(f"SELECT min(snapshot_id) FROM (SELECT history_meta('{three_batches}'))").fetchone()[0]
    q = client.query.run(f"CREATE TABLE snapshot_increment AS SELECT * FROM {three_batches} SNAPSHOT SINCE {first}",
                         name="increment")
    assert q["rowCount"] == 5


INCREMENTAL_LOAD = """
$$ BEGIN
    SET @from_snapshot_id = SELECT coalesce(max(last_snapshot_id), 'HEAD') FROM checkpoint_log;
    SET @to_snapshot_id = SELECT snapshot_id FROM (SELECT history_meta('{t}')) WHERE is_current = true;
    {write} SELECT * FROM {t} SNAPSHOT BETWEEN @from_snapshot_id AND @to_snapshot_id;
    INSERT INTO checkpoint_log
        SELECT 'events' process_name, cast(@to_snapshot_id AS string) last_snapshot_id,
               current_timestamp process_timestamp;
EXCEPTION
    WHEN OTHER THEN SELECT 'ERROR';
END
$$;
"""


def _add_batch(client, tenant: str, table_name: str, n: int) -> None:
    ds = next(d for d in client.catalog.iter_datasets() if d["tags"].get("adobe/pqs/table") == [table_name])
    buf = io.BytesIO()
    pq.write_table(pa.table({"_id": [f"late-{k}" for k in range(n)],
                             "timestamp": pa.array([9] * n, pa.timestamp("us", tz="UTC")),
                             f"_{tenant}": pa.StructArray.from_arrays([pa.array(["late"] * n)], names=["userid"])}),
                   buf)
    batch = client.ingestion.create_batch(ds["id"], "parquet")
    client.ingestion.upload_file(batch["id"], ds["id"], "late.parquet", buf.getvalue())
    client.ingestion.complete_batch(batch["id"])
    client.ingestion.wait_for_batch(batch["id"], timeout_s=30)


def test_an_anonymous_block_runs_adobes_incremental_load_pattern(params, three_batches):
    client, t = params["client"], three_batches
    with _connect(params, autocommit=True) as conn:
        conn.execute("CREATE TABLE checkpoint_log AS SELECT cast(NULL AS string) process_name, "
                     "cast(NULL AS string) last_snapshot_id, cast(NULL AS TIMESTAMP) process_timestamp WHERE false")
        conn.execute(INCREMENTAL_LOAD.format(t=t, write="CREATE TABLE events_incremental AS"))
        assert conn.execute("SELECT count(*) FROM events_incremental").fetchone() == (6,)
        _add_batch(client, params["tenant"], t, 4)
        # the same block over REST, as a scheduled query would run it: only the new batch is read
        client.query.run(INCREMENTAL_LOAD.format(t=t, write="INSERT INTO events_incremental"), name="increment")
        assert conn.execute("SELECT count(*) FROM events_incremental").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM checkpoint_log").fetchone() == (2,)


def test_a_failing_block_runs_its_exception_section_or_raises_without_one(params):
    with _connect(params, autocommit=True) as conn:
        handled = conn.execute("$$ BEGIN SELECT * FROM missing_table; EXCEPTION WHEN OTHER THEN SELECT 'ERROR'; "
                               "END $$")
        assert handled.fetchall() == [("ERROR",)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("$$ BEGIN SET @n = SELECT 1; SELECT * FROM missing_table; END $$")


# TLS (help/query-service/clients/overview.md: Query Service requires SSL; sslmode=require). The sandbox
# serves its self-signed certificate; plain connections keep working for sslmode=disable/prefer.
def test_psycopg3_with_sslmode_require_runs_over_tls(params):
    with _connect(params, sslmode="require") as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute(f"SELECT count(*) FROM {params['table']}").fetchone()[0] == 3
    with _connect(params, sslmode="disable") as conn:
        assert not conn.info.pgconn.ssl_in_use
        assert conn.execute(f"SELECT count(*) FROM {params['table']}").fetchone()[0] == 3


def test_a_tls_session_ends_the_way_socketserver_ends_it():
    """When a TLS client leaves, socketserver flushes and closes the session's writer: no traceback in the log."""
    from aep_sandbox.pgwire import Session, _SocketWriter

    ours, theirs = socket.socketpair()
    with ours, theirs:
        session = object.__new__(Session)
        session.wfile, session.rfile = _SocketWriter(ours), io.BytesIO()
        session.wfile.write(b"Z")
        socketserver.StreamRequestHandler.finish(session)
        assert session.wfile.closed and theirs.recv(1) == b"Z"


def test_psycopg2_with_sslmode_require_runs_over_tls(params):
    conn = psycopg2.connect(host=params["host"], port=params["port"], dbname=params["dbName"],
                            user=params["username"], password=params["token"], sslmode="require")
    try:
        assert conn.info.ssl_in_use
        with conn.cursor() as cur:
            cur.execute(f"SELECT eventType FROM {params['table']} ORDER BY timestamp")
            assert [r[0] for r in cur.fetchall()][1] == "commerce.purchases"
    finally:
        conn.close()


def test_psql_with_sslmode_require_reports_tls(params):
    env = {**os.environ, "PGPASSWORD": params["token"], "PGGSSENCMODE": "disable", "PGSSLMODE": "require"}
    done = subprocess.run(["psql", "-h", params["host"], "-p", str(params["port"]), "-U", params["username"], "-d",
                           params["dbName"], "-X", "-c", r"\conninfo", "-c", f"SELECT count(*) FROM {params['table']}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "SSL connection" in done.stdout and "3" in done.stdout


# What BI tools and drivers ask at connect time (help/query-service/clients/: psql, and clients that read the
# PostgreSQL catalogs): information_schema, pg_catalog, psql's \dt and \d, SQLAlchemy, pandas.
def _psql(params, *commands: str, sslmode: str = "require") -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": params["token"], "PGGSSENCMODE": "disable", "PGSSLMODE": sslmode}
    args = [a for c in commands for a in ("-c", c)]
    return subprocess.run(["psql", "-h", params["host"], "-p", str(params["port"]), "-U", params["username"], "-d",
                           params["dbName"], "-X", *args], env=env, capture_output=True, text=True, timeout=60)


def test_psql_lists_and_describes_tables(params):
    listed = _psql(params, r"\dt")
    assert listed.returncode == 0, listed.stderr
    assert params["table"] in listed.stdout and "table" in listed.stdout
    described = _psql(params, rf"\d {params['table']}")
    assert described.returncode == 0, described.stderr
    lines = {line.split("|")[0].strip(): line.split("|")[1].strip() for line in described.stdout.splitlines()
             if line.count("|") >= 4}
    assert lines["eventType"] == "character varying" and lines["timestamp"] == "timestamp with time zone"
    assert lines[f"_{params['tenant']}"] == "json"  # structs read as JSON, as with auto_to_json


def test_information_schema_describes_the_datasets(params):
    with _connect(params, sslmode="require") as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables")}
        columns = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            (params["table"],)).fetchall())
    assert params["table"] in tables
    assert {"_id", "timestamp", "eventType"} <= set(columns)


@pytest.mark.parametrize("sslmode", ["require", "disable"])
def test_sqlalchemy_inspects_and_pandas_reads(params, sslmode):
    from urllib.parse import quote

    import pandas as pd
    import sqlalchemy as sa

    url = (f"postgresql+psycopg2://{quote(params['username'])}:{quote(params['token'])}@{params['host']}:"
           f"{params['port']}/{quote(params['dbName'])}?sslmode={sslmode}")
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        assert params["table"] in inspector.get_table_names()
        types = {c["name"]: type(c["type"]).__name__ for c in inspector.get_columns(params["table"])}
        assert types["eventType"] == "VARCHAR" and types["timestamp"] == "TIMESTAMP"
        frame = pd.read_sql(f"SELECT eventType, count(*) AS n FROM {params['table']} GROUP BY eventType "
                            "ORDER BY eventType", engine)
        assert frame.to_dict("records") == [{"eventType": "commerce.purchases", "n": 1},
                                            {"eventType": "web.webpagedetails.pageViews", "n": 2}]
    finally:
        engine.dispose()
