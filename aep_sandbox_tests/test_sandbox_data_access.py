"""Data Access contract (reference/aep_api.md §6): a batch's files, downloads with Range, failed batches."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from aep_assets.aep import errors

from .contract import event_dataset, headers, ingest_json, records


@pytest.fixture(scope="module")
def loaded(sandbox):
    from .conftest import client_for, replace_rows

    client = client_for(sandbox)
    ds_id, tenant = event_dataset(client, "data access events")
    table = pa.table({"_id": [f"d{i}" for i in range(500)],
                      "timestamp": pa.array(range(500), pa.timestamp("us", tz="UTC")),
                      f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u"] * 500)], names=["userid"])})
    batch = replace_rows(client, ds_id, [table])
    return client, ds_id, tenant, batch


def test_a_batch_lists_one_file_directory_with_links(loaded, sandbox):
    client, ds_id, _, batch = loaded
    r = requests.get(f"{sandbox.url}/data/foundation/export/batches/{batch['id']}/files", headers=headers(client))
    assert r.status_code == 200
    body = r.json()
    assert body["_page"]["count"] == 1 and body["data"][0]["dataSetViewId"] == ds_id
    assert body["data"][0]["_links"]["self"]["href"].endswith(f"/export/files/{batch['id']}-1")


def test_files_download_whole_and_by_range(loaded, sandbox):
    client, _, _, batch = loaded
    [directory] = client.data_access.batch_files(batch["id"])
    [entry] = client.data_access.files(directory["dataSetFileId"])
    whole = client.data_access.download(directory["dataSetFileId"], entry["name"])
    assert len(whole) == int(entry["length"]) and pq.read_table(io.BytesIO(whole)).num_rows == 500
    url = f"{sandbox.url}/data/foundation/export/files/{directory['dataSetFileId']}"
    part = requests.get(url, params={"path": entry["name"]}, headers={**headers(client), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    assert client.data_access.download(directory["dataSetFileId"], entry["name"], (100, 199)) == whole[100:200]
    head = requests.head(url, params={"path": entry["name"]}, headers=headers(client))
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(whole))
    assert head.headers["Content-Type"] == "application/parquet"
    bad = requests.get(url, params={"path": entry["name"]}, headers={**headers(client), "Range": "bytes=99999999-"})
    assert bad.status_code == 416


def test_batch_contents_round_trip(loaded):
    client, _, _, batch = loaded
    files = client.data_access.batch_contents(batch["id"])
    assert sum(pq.read_table(io.BytesIO(b)).num_rows for b in files.values()) == 500


def test_a_failed_batch_keeps_what_it_was_sent_and_its_row_errors(loaded):
    client, ds_id, tenant, _ = loaded
    rows = [*records(tenant, 2), {**records(tenant, 1)[0], "timestamp": "not a time"}]
    payload = "\n".join(json.dumps(r) for r in rows).encode()
    with pytest.raises(errors.BatchFailed):
        ingest_json(client, ds_id, payload)
    failed = max(client.catalog.iter_batches(ds_id, status="failed"), key=lambda b: b["created"])
    assert [f["name"] for f in client.data_access.failed_files(failed["id"])] == ["records.json"]
    sent = client.session.request("GET", f"/data/foundation/export/batches/{failed['id']}/failed",
                                  params={"path": "records.json"}, headers={"Accept": "*/*"}).content
    assert sent == payload
    row_errors = client.data_access.row_errors(failed["id"])
    assert row_errors and all(e["code"] and "timestamp" in e["message"] for e in row_errors)


def test_unknown_batches_and_files_are_404(loaded, sandbox):
    client, *_ = loaded
    r = requests.get(f"{sandbox.url}/data/foundation/export/batches/nope/files", headers=headers(client))
    assert r.status_code == 404 and r.json()["status"] == 404
