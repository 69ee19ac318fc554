"""Query Service REST contract (reference/aep_api.md §7.3): asynchronous queries, cancel, soft delete, listing."""

import pytest
import requests

from aep_assets.aep import errors

from .conftest import client_for
from .contract import headers


def test_query_is_accepted_then_runs_asynchronously(sandbox, client):
    # §7.3: 202 SUBMITTED, then SUCCESS with elapsedTime in ms.
    r = requests.post(f"{sandbox.url}/data/foundation/query/queries", headers=headers(client),
                      json={"dbName": "prod:all", "sql": "SELECT 1 AS one", "name": "contract"})
    assert r.status_code == 202 and r.json()["state"] == "SUBMITTED"
    done = client.query.wait(r.json()["id"], timeout_s=30)
    assert done["state"] == "SUCCESS" and done["rowCount"] == 1 and isinstance(done["elapsedTime"], int)


def test_a_submitted_query_can_be_cancelled(make_sandbox):
    slow = make_sandbox("held", lifecycles="query=manual:1000000")  # held SUBMITTED, whatever the clock
    client = client_for(slow)
    q = client.query.submit("SELECT 1", name="to cancel")
    client.query.cancel(q["id"])
    assert client.query.get(q["id"])["state"] == "CANCELLED"
    with pytest.raises(errors.QueryFailed):
        client.query.wait(q["id"], timeout_s=10)
    with pytest.raises(errors.BadRequest, match="only a submitted or running query"):
        client.query.cancel(q["id"])
    assert [x["id"] for x in client.query.list(state="CANCELLED")] == [q["id"]]


def test_soft_deleted_queries_leave_the_listing(client):
    q = client.query.run("SELECT 1", name="soft deleted")
    client.session.json("PATCH", f"/data/foundation/query/queries/{q['id']}", json={"op": "soft_delete"})
    assert q["id"] not in {x["id"] for x in client.query.list(limit=100)}
