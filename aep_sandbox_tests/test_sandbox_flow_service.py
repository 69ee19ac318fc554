"""Flow Service contract (reference/aep_api.md §8.3 item 8): PATCH with If-Match and etags, enable/disable."""

import io
import json

import pyarrow.parquet as pq
import pytest
import requests

from aep_assets.aep import errors
from aep_assets.pipeline.exports import export_dataset
from aep_assets.storage import LocalStorage
from aep_sandbox.flow_service import EXPORT_ROW_GROUP, EXPORT_WRITERS

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


def test_a_large_export_comes_as_gzip_parts_that_hold_every_row_once(sandbox):
    """Past one batch of rows the export writes several part files side by side, as AEP's own job does: every row
    lands in exactly one of them, the run's metrics count them all, and each part is gzip Parquet when asked."""
    client = client_for(sandbox)
    ds_id, tenant = event_dataset(client, "large export events")
    n = 2 * EXPORT_ROW_GROUP + 123
    ingest_json(client, ds_id, "\n".join(json.dumps({
        "_id": f"e{i}", "timestamp": f"2026-01-{1 + i % 28:02d}T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
        f"_{tenant}": {"userid": f"u{i}"}}) for i in range(n)).encode())
    storage = LocalStorage(sandbox.data_dir)
    export = export_dataset(client, storage, ds_id, flow_name="large export", path="large")
    assert len(export.keys) == EXPORT_WRITERS and all(k.endswith(".gz.parquet") for k in export.keys)
    assert export.rows == n and export.run["metrics"]["fileSummary"]["outputFileCount"] == EXPORT_WRITERS
    parts = [pq.ParquetFile(io.BytesIO(storage.read_bytes(k))) for k in export.keys]
    assert all(p.metadata.row_group(0).column(0).compression == "GZIP" for p in parts)
    ids = [i for p in parts for i in p.read(columns=["_id"]).column("_id").to_pylist()]
    assert sorted(ids) == sorted(f"e{i}" for i in range(n))
    # Instants in UTC, whatever the zone of the machine the sandbox runs on is called ('Etc/UTC' broke readers).
    assert all(str(p.schema_arrow.field("timestamp").type) == "timestamp[us, tz=UTC]" for p in parts)
