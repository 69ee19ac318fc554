"""Batch ingestion contract (reference/aep_api.md §5): chunked uploads, ABORT and REVERT."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from aep_assets.aep import errors

from .test_sandbox_contract import _event_dataset, _headers


def _parquet(tenant: str, n: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"_id": [f"c{i}" for i in range(n)],
                             "timestamp": pa.array(range(n), pa.timestamp("us", tz="UTC")),
                             f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u"] * n)], names=["userid"])}),
                   buf, compression="none")
    return buf.getvalue()


def _batch(client, ds_id: str) -> str:
    return client.ingestion.create_batch(ds_id, "parquet")["id"]


def test_a_file_uploaded_in_chunks_is_ingested_whole(client):
    ds_id, tenant = _event_dataset(client, "chunked upload")
    data = _parquet(tenant, 5000)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_large_file(batch_id, ds_id, "big.parquet", data, chunk_size=7_000)
    client.ingestion.complete_batch(batch_id)
    done = client.ingestion.wait_for_batch(batch_id, timeout_s=30)
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 5000


def test_chunk_statuses_and_a_gap_is_refused(sandbox, client):
    ds_id, tenant = _event_dataset(client, "chunked gap")
    data = _parquet(tenant, 100)
    batch_id = _batch(client, ds_id)
    url = f"{sandbox.url}/data/foundation/import/batches/{batch_id}/datasets/{ds_id}/files/gap.parquet"
    h = {**_headers(client), "Content-Type": "application/octet-stream"}
    assert requests.post(url, params={"action": "INITIALIZE"}, headers=h).status_code == 201
    r = requests.patch(url, data=data[:100], headers={**h, "Content-Range": "bytes 0-99"})
    assert r.status_code == 200
    assert requests.head(url, headers=h).headers["Content-Length"] == "100"  # §5: HEAD shows upload status
    requests.patch(url, data=data[200:300], headers={**h, "Content-Range": "bytes 200-299"})
    r = requests.post(url, params={"action": "COMPLETE"}, headers=h)
    assert r.status_code == 400 and "gap at byte 100" in r.json()["detail"]
    mismatch = requests.patch(url, data=data[:10], headers={**h, "Content-Range": "bytes 0-99"})
    assert mismatch.status_code == 400 and "the body has 10" in mismatch.json()["detail"]


def test_abort_drops_a_loading_batch(client):
    ds_id, tenant = _event_dataset(client, "aborted batch")
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "a.parquet", _parquet(tenant, 10))
    client.ingestion.abort_batch(batch_id)
    assert client.catalog.get_batch(batch_id)["status"] == "aborted"
    with pytest.raises(errors.BadRequest, match="loading"):
        client.ingestion.upload_file(batch_id, ds_id, "b.parquet", _parquet(tenant, 10))


def test_revert_hides_a_successful_batch(client):
    ds_id, tenant = _event_dataset(client, "reverted batch")
    batch_ids = []
    for n in (10, 20):
        batch_id = _batch(client, ds_id)
        client.ingestion.upload_file(batch_id, ds_id, "r.parquet", _parquet(tenant, n))
        client.ingestion.complete_batch(batch_id)
        client.ingestion.wait_for_batch(batch_id, timeout_s=30)
        batch_ids.append(batch_id)
    table = client.catalog.table_name(client.catalog.get_dataset(ds_id))
    client.ingestion.revert_batch(batch_ids[0])
    assert client.catalog.get_batch(batch_ids[0])["status"] == "inactive"
    assert client.ingestion.active_batch_ids(ds_id) == [batch_ids[1]]
    q = client.query.run(f"CREATE TABLE reverted_copy AS SELECT * FROM {table}", name="after revert")
    assert q["rowCount"] == 20
    with pytest.raises(errors.BadRequest, match="only a successful batch"):
        client.ingestion.revert_batch(batch_ids[0])


def test_a_conforming_parquet_file_is_kept_byte_for_byte(client):
    ds_id, tenant = _event_dataset(client, "kept parquet")
    data = _parquet(tenant, 50)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "kept.parquet", data)
    client.ingestion.complete_batch(batch_id)
    client.ingestion.wait_for_batch(batch_id, timeout_s=30)
    assert list(client.data_access.batch_contents(batch_id).values()) == [data]


@pytest.mark.parametrize(("column", "values", "message"), [
    ("_id", [None, "x"], "Required field '_id' is null in 1 records"),
    ("timestamp", ["not a time", "x"], "Field 'timestamp' expects date-time"),
])
def test_parquet_that_breaks_the_schema_still_fails_the_batch(client, column, values, message):
    ds_id, tenant = _event_dataset(client, f"bad parquet {column}")
    table = pq.read_table(io.BytesIO(_parquet(tenant, 2)))
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "bad.parquet", buf.getvalue())
    client.ingestion.complete_batch(batch_id)
    with pytest.raises(errors.BatchFailed, match=message):
        client.ingestion.wait_for_batch(batch_id, timeout_s=30)
