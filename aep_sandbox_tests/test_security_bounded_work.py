"""Bounded work: queries stop at Query Service's guardrail time, running queries can be cancelled, and
batches never wait behind queries."""

import pyarrow as pa
import pytest

from aep_assets.aep import errors
from aep_assets.aep.polling import poll
from aep_assets.pipeline.ingest import ingest_batch
from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for

ENDLESS = "SELECT SUM(a.range * b.range) AS s FROM range(2000000) AS a, range(2000000) AS b"


def _running(client, query_id: str) -> dict:
    return poll(lambda _wait: client.query.get(query_id), lambda q: q["state"] != "SUBMITTED", what="query",
                timeout_s=30)


def test_an_ad_hoc_query_stops_at_the_guardrail_with_53400(make_sandbox):
    client = client_for(make_sandbox("timeout", env={"AEP_SANDBOX_ADHOC_TIMEOUT_S": "1"}))
    with pytest.raises(errors.QueryFailed) as exc:
        client.query.run(ENDLESS, name="endless", timeout_s=60)
    assert exc.value.errors[0]["code"] == "53400" and "maximum execution time of 1 s" in str(exc.value)
    assert client.query.run("SELECT 1", name="after", timeout_s=30)["state"] == "SUCCESS"


def test_a_running_query_can_be_cancelled(make_sandbox):
    client = client_for(make_sandbox("cancel"))
    q = client.query.submit(ENDLESS, name="to cancel while it runs")
    assert _running(client, q["id"])["state"] == "IN_PROGRESS"
    client.query.cancel(q["id"])
    ended = poll(lambda _wait: client.query.get(q["id"]), lambda x: x.get("errors"), what="cancel", timeout_s=30)
    assert ended["state"] == "CANCELLED" and ended["errors"][0]["code"] == "57014"
    assert client.query.run("SELECT 1", name="after cancel", timeout_s=30)["state"] == "SUCCESS"


def test_batches_do_not_wait_behind_endless_queries(make_sandbox):
    client = client_for(make_sandbox("pools"))
    platform = ensure_schemas(client)
    ds = client.catalog.create_dataset("pool events", platform.schema_id("event"))
    endless = [client.query.submit(ENDLESS, name=f"endless {i}") for i in range(2)]
    assert all(_running(client, q["id"])["state"] == "IN_PROGRESS" for q in endless)
    rows = pa.table({"_id": ["p1"], "timestamp": pa.array([0], pa.timestamp("us", "UTC")),
                     f"_{platform.tenant_id}": pa.StructArray.from_arrays([pa.array(["u1"])], names=["userid"])})
    assert ingest_batch(client, ds["id"], [rows], replace=None, timeout_s=20)["status"] == "success"
    for q in endless:
        client.query.cancel(q["id"])
