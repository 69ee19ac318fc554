"""Flow Service contract (reference/aep_api.md §8.3 item 8): PATCH with If-Match and etags, enable/disable."""

import json

import pytest
import requests

from aep_assets.aep import errors
from aep_assets.pipeline.exports import export_dataset
from aep_assets.storage import LocalStorage

from .conftest import client_for
from .contract import event_dataset, headers, ingest_json, records


@pytest.fixture(scope="module")
def flow(sandbox):
    client = client_for(sandbox)
    ds_id, tenant = event_dataset(client, "flow management events")
    ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in records(tenant)).encode())
    storage = LocalStorage(sandbox.data_dir)
    export = export_dataset(client, storage, ds_id, flow_name="flow management export", path="fm")
    return client, storage, ds_id, export.flow


def test_patch_needs_the_current_etag(flow, sandbox):
    client, _, _, f = flow
    url = f"{sandbox.url}/data/foundation/flowservice/flows/{f['id']}"
    body = [{"op": "Add", "path": "/description", "value": "patched"}]  # aepp capitalises op
    missing = requests.patch(url, json=body, headers=headers(client))
    assert missing.status_code == 400 and "If-Match" in missing.json()["detail"]
    stale = requests.patch(url, json=body, headers={**headers(client), "If-Match": '"stale"'})
    assert stale.status_code == 412
    current = client.session.json("GET", f"/data/foundation/flowservice/flows/{f['id']}")["items"][0]
    ok = requests.patch(url, json=body, headers={**headers(client), "If-Match": current["etag"]})
    assert ok.status_code == 200 and set(ok.json()) == {"id", "etag"} and ok.json()["etag"] != current["etag"]
    after = client.session.json("GET", f"/data/foundation/flowservice/flows/{f['id']}")["items"][0]
    assert after["description"] == "patched" and after["etag"] == ok.json()["etag"]
    with pytest.raises(errors.PreconditionFailed):
        client.flows.patch("flows", f["id"], body, etag=current["etag"])  # the etag it had before
    assert client.flows.patch("flows", f["id"], [{"op": "replace", "path": "/scheduleParams",
                                                  "value": {"startTime": 1767225600}}])["id"] == f["id"]


def test_a_disabled_flow_does_not_run_until_enabled(flow):
    client, storage, ds_id, f = flow
    client.flows.set_flow_state(f["id"], enabled=False)
    assert client.session.json("GET", f"/data/foundation/flowservice/flows/{f['id']}")["items"][0]["state"] \
        == "disabled"
    with pytest.raises(errors.BadRequest, match="disabled"):
        client.flows.export_dataset_now(f["id"], ds_id)
    client.flows.set_flow_state(f["id"], enabled=True)
    assert export_dataset(client, storage, ds_id, flow_name="flow management export", path="fm").rows == 3


def test_read_only_fields_cannot_be_patched(flow):
    client, _, _, f = flow
    with pytest.raises(errors.BadRequest, match="'state' cannot be patched"):
        client.flows.patch("flows", f["id"], [{"op": "replace", "path": "/state", "value": "disabled"}])
