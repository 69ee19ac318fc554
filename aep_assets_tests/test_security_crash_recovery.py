"""After ``kill -9`` a restarted sandbox ends every lifecycle the crash interrupted, terminal and retryable,
removes their temporary files, and the same work, and then the whole pipeline, runs to the end."""

import dagster as dg
import pyarrow as pa
import pytest

from aep_assets.aep import errors
from aep_assets.pipeline.ingest import ingest_batch, parquet_bytes
from aep_assets.pipeline.schemas import ensure_schemas
from aep_assets.resources import build_resources
from aep_sandbox.process import SandboxProcess

from .conftest import client_for, replace_rows
from .demo import ALL_ASSETS
from .test_pipeline_e2e import RUN_CONFIG

CTAS = "CREATE TABLE crash_ctas AS SELECT eventType, COUNT(*) AS n FROM {table} GROUP BY eventType"


def _events(tenant: str, n: int = 50) -> pa.Table:
    return pa.table({"_id": [f"c{i}" for i in range(n)], "timestamp": pa.array(range(n), pa.timestamp("us", "UTC")),
                     "eventType": ["web.webpagedetails.pageViews"] * n,
                     f"_{tenant}": pa.StructArray.from_arrays([pa.array([f"u{i % 5}" for i in range(n)])],
                                                              names=["userid"])})


def test_a_crash_during_a_batch_a_query_and_a_ctas_leaves_everything_retryable(tmp_path):
    data = tmp_path / "aep"
    with SandboxProcess(data) as setup:
        client = client_for(setup)
        tenant = ensure_schemas(client).tenant_id
        ds = client.catalog.create_dataset("crash events", ensure_schemas(client).schema_id("event"))
        replace_rows(client, ds["id"], [_events(tenant)])
        table = client.catalog.table_name(client.catalog.get_dataset(ds["id"]))
    # Batches and queries are held in flight until read a million times: the crash lands there, with no timer.
    slow = SandboxProcess(data, lifecycles="batch=manual:1000000,query=manual:1000000").start()
    client = client_for(slow)
    batch = client.ingestion.create_batch(ds["id"], "parquet")
    client.ingestion.upload_file(batch["id"], ds["id"], "part-0.parquet", parquet_bytes(_events(tenant, 20)))
    client.ingestion.complete_batch(batch["id"])
    select = client.query.submit(f"SELECT COUNT(*) FROM {table}", name="crash select")
    ctas = client.query.submit(CTAS.format(table=table), name="crash ctas")
    assert client.catalog.get_batch(batch["id"])["status"] == "staging"
    assert client.query.get(ctas["id"])["state"] == "SUBMITTED"
    slow.kill()

    with SandboxProcess(data) as restarted:
        client = client_for(restarted)
        failed = client.catalog.get_batch(batch["id"])
        assert failed["status"] == "failed" and failed["errors"][0]["code"] == "INTERNAL"  # the client retries it
        for query in (select, ctas):
            ended = client.query.get(query["id"])
            assert ended["state"] == "FAILED" and ended["errors"][0]["code"] == "57P01"
        assert not list(data.rglob(f"uploads/{batch['id']}")) and not list(data.rglob("*.tmp"))
        assert client.catalog.find_dataset("crash_ctas") is None
        # the same work, again, to the end
        done = ingest_batch(client, ds["id"], [_events(tenant, 20)], replace=None, timeout_s=30)
        assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 20
        assert client.query.run(CTAS.format(table=table), name="crash ctas again", timeout_s=30)["rowCount"] == 1
        assert client.query.select("SELECT n FROM crash_ctas") == [{"n": 70}]
    # and the pipeline, on the recovered data directory, runs to the end with every gate passing
    resources = build_resources({"AEP_SANDBOX_DIR": str(data), "AEP_STORAGE_DIR": str(tmp_path / "storage")})
    with dg.instance_for_test() as instance:
        result = dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations()
                                  if c.check_name not in ("drift", "champion_challenger"))


def test_a_failed_ctas_leaves_no_table_behind(client):
    ensure_schemas(client)
    tenant = client.schemas.tenant_id()
    ds = client.catalog.create_dataset("ctas failure events", ensure_schemas(client).schema_id("event"))
    replace_rows(client, ds["id"], [_events(tenant)])
    table = client.catalog.table_name(client.catalog.get_dataset(ds["id"]))
    with pytest.raises(errors.QueryFailed):  # fails while its rows are written
        client.query.run(f"CREATE TABLE half_made AS SELECT 9223372036854775807 + COUNT(*) AS n FROM {table}",
                         name="failing ctas", timeout_s=30)
    assert client.catalog.find_dataset("half_made") is None
    q = client.query.run(f"CREATE TABLE half_made AS SELECT COUNT(*) AS n FROM {table}", name="retry", timeout_s=30)
    assert q["state"] == "SUCCESS"  # no 42P07: nothing was left behind
