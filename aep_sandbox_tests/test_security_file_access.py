"""Query Service reads only the caller's sandbox's datasets: no host file, no other sandbox, no extension.

Each attack is written out as a hostile user would send it, over REST and over PostgreSQL; each is
refused with a SQLSTATE error and leaves no dataset behind.
"""

import duckdb
import psycopg
import pyarrow as pa
import pytest

from aep_assets.aep import errors
from aep_sandbox.lockdown import locked_connection

from .conftest import client_for, replace_rows
from .contract import event_dataset


@pytest.fixture(scope="module")
def other_sandbox_file(sandbox):
    """A dataset of another sandbox ('dev-other'), and the path of its Parquet file on disk."""
    other = client_for(sandbox, sandbox_name="dev-other")
    ds_id, tenant = event_dataset(other, "other sandbox secrets")
    replace_rows(other, ds_id, [pa.table({"_id": ["s1"], "timestamp": pa.array([0], pa.timestamp("us", "UTC")),
                                          f"_{tenant}": pa.StructArray.from_arrays([pa.array(["victim"])],
                                                                                   names=["userid"])})])
    return next(sandbox.data_dir.rglob(f"dev-other/datasets/{ds_id}/*/*.parquet"))


def attacks(sandbox, other_file) -> list[str]:
    secret = sandbox.data_dir / "credentials.json"
    return [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_parquet('{other_file}')",
        "SELECT * FROM read_blob('/proc/self/environ')",
        f"SELECT content FROM read_text('{secret}') AS t",
        "SELECT * FROM '/etc/passwd'",
        "SELECT getenv('HOME') AS home",
        "SELECT * FROM glob('/*')",
        f"CREATE TABLE stolen AS SELECT * FROM read_text('{secret}')",
        "INSTALL httpfs",
        "ATTACH '/tmp/x.duckdb' AS x",
        "COPY (SELECT 1) TO '/tmp/aep-sandbox-escape.csv'",
    ]


def test_every_file_access_over_rest_is_refused(sandbox, client, other_sandbox_file):
    before = {d["id"] for d in client.catalog.iter_datasets()}
    for sql in attacks(sandbox, other_sandbox_file):
        with pytest.raises(errors.QueryFailed) as exc:
            client.query.run(sql, name="attack", timeout_s=30)
        assert exc.value.errors and exc.value.errors[0]["code"] in ("42501", "42601", "42P01", "0A000"), sql
        text = str(exc.value)
        assert "root:" not in text and "client_secret" not in text and "victim" not in text, sql
    assert {d["id"] for d in client.catalog.iter_datasets()} == before  # no CTAS left a table
    assert client.catalog.find_dataset("stolen") is None


def test_every_file_access_over_postgresql_is_refused(sandbox, client, other_sandbox_file):
    p = client.query.connection_parameters()
    with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                         password=p["token"], autocommit=True) as conn:
        for sql in attacks(sandbox, other_sandbox_file):
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(sql).fetchall()
            assert exc.value.sqlstate in ("42501", "42601", "42P01", "0A000"), (sql, exc.value.sqlstate)
        assert conn.execute("SELECT 1 AS still_alive").fetchall() == [(1,)]  # the session survives
    assert client.catalog.find_dataset("stolen") is None


def test_table_functions_are_refused_with_insufficient_privilege(client):
    with pytest.raises(errors.QueryFailed) as exc:
        client.query.run("SELECT * FROM read_csv('/etc/passwd')", name="attack", timeout_s=30)
    assert exc.value.errors[0]["code"] == "42501" and "not available in Query Service" in str(exc.value)
    assert client.query.run("SELECT * FROM range(3)", name="generator", timeout_s=30)["rowCount"] == 3


def test_the_engine_connection_itself_cannot_leave_its_folder(tmp_path):
    # The second lock: even SQL that reached DuckDB directly could not read, write or unlock.
    mine = tmp_path / "mine"
    (tmp_path / "outside.csv").write_text("secret\n1\n")
    mine.mkdir()
    (mine / "ok.csv").write_text("x\n1\n")
    con = locked_connection(mine)
    assert con.execute(f"SELECT * FROM read_csv('{mine / 'ok.csv'}')").fetchall() == [(1,)]
    for sql in (f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')", "SELECT * FROM read_text('/etc/passwd')",
                f"COPY (SELECT 1) TO '{tmp_path / 'written.csv'}'"):
        with pytest.raises(duckdb.PermissionException):
            con.execute(sql)
    for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                "SET autoinstall_known_extensions = true"):
        with pytest.raises(duckdb.Error, match="configuration"):
            con.execute(sql)
    assert not (tmp_path / "written.csv").exists()
