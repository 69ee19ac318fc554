"""Batch ingestion contract (reference/aep_api.md §5): formats, validation, replay, chunked uploads, ABORT,
REVERT."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from aep_assets.aep import errors
from aep_assets.pipeline.ingest import parquet_bytes
from aep_assets.pipeline.naming import Names
from aep_assets.pipeline.schemas import ensure_schemas
from aep_assets.pipeline.synthetic import publish_events
from aep_assets.simulation import SimulationConfig, simulate
from aep_assets.simulation.xdm import events_to_xdm

from .conftest import replace_rows
from .contract import event_dataset, headers, ingest_json, records


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
    ds_id, tenant = event_dataset(client, "chunked upload")
    data = _parquet(tenant, 5000)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_large_file(batch_id, ds_id, "big.parquet", data, chunk_size=7_000)
    client.ingestion.complete_batch(batch_id)
    done = client.ingestion.wait_for_batch(batch_id, timeout_s=30)
    assert done["status"] == "success" and done["metrics"]["recordsWritten"] == 5000


def test_chunk_statuses_and_a_gap_is_refused(sandbox, client):
    ds_id, tenant = event_dataset(client, "chunked gap")
    data = _parquet(tenant, 100)
    batch_id = _batch(client, ds_id)
    url = f"{sandbox.url}/data/foundation/import/batches/{batch_id}/datasets/{ds_id}/files/gap.parquet"
    h = {**headers(client), "Content-Type": "application/octet-stream"}
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
    ds_id, tenant = event_dataset(client, "aborted batch")
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "a.parquet", _parquet(tenant, 10))
    client.ingestion.abort_batch(batch_id)
    assert client.catalog.get_batch(batch_id)["status"] == "aborted"
    with pytest.raises(errors.BadRequest, match="loading"):
        client.ingestion.upload_file(batch_id, ds_id, "b.parquet", _parquet(tenant, 10))


def test_revert_hides_a_successful_batch(client):
    ds_id, tenant = event_dataset(client, "reverted batch")
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
    ds_id, tenant = event_dataset(client, "kept parquet")
    data = _parquet(tenant, 50)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "kept.parquet", data)
    client.ingestion.complete_batch(batch_id)
    client.ingestion.wait_for_batch(batch_id, timeout_s=30)
    assert list(client.data_access.batch_contents(batch_id).values()) == [data]


def test_the_simulations_events_are_kept_byte_for_byte(client):
    """The pipeline's writer keeps the statistics ingestion reads (the required fields' null counts) and drops
    those of the standard nested leaves: the events' files are still kept as they are, not decoded again."""
    sim = simulate(SimulationConfig(n_profiles=300, seed=3))
    names, tenant = Names("kept_files"), client.schemas.tenant_id()
    ensure_schemas(client)
    events = publish_events(client, sim, names)
    sent = parquet_bytes(events_to_xdm(sim.events, sim.profiles, tenant, sim.config.seed))
    footer = pq.ParquetFile(io.BytesIO(sent)).metadata.row_group(0)
    kept = {footer.column(j).path_in_schema for j in range(footer.num_columns) if footer.column(j).statistics}
    assert kept == {"_id", "timestamp", "eventType", "producedBy", f"_{tenant}.userid"}
    assert list(client.data_access.batch_contents(events.batch["id"]).values()) == [sent]


@pytest.mark.parametrize(("column", "values", "message"), [
    ("_id", [None, "x"], "Required field '_id' is null in 1 records"),
    ("timestamp", ["not a time", "x"], "Field 'timestamp' expects date-time"),
])
def test_parquet_that_breaks_the_schema_still_fails_the_batch(client, column, values, message):
    ds_id, tenant = event_dataset(client, f"bad parquet {column}")
    table = pq.read_table(io.BytesIO(_parquet(tenant, 2)))
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    batch_id = _batch(client, ds_id)
    client.ingestion.upload_file(batch_id, ds_id, "bad.parquet", buf.getvalue())
    client.ingestion.complete_batch(batch_id)
    with pytest.raises(errors.BatchFailed, match=message):
        client.ingestion.wait_for_batch(batch_id, timeout_s=30)

def test_json_lines_and_single_line_arrays_are_ingested(client):
    ds_id, tenant = event_dataset(client, "contract json")
    lines = "\n".join(json.dumps(r) for r in records(tenant)).encode()
    assert ingest_json(client, ds_id, lines)["metrics"]["recordsWritten"] == 3
    array = json.dumps(records(tenant, 2)).encode()  # what aepp's uploadSmallFile sends
    assert ingest_json(client, ds_id, array)["metrics"]["recordsWritten"] == 2
    multi = json.dumps(records(tenant, 4), indent=2).encode()
    assert ingest_json(client, ds_id, multi, multiline=True)["metrics"]["recordsWritten"] == 4
    q = client.query.run(f"CREATE TABLE contract_json_copy AS SELECT * FROM "
                         f"{client.catalog.table_name(client.catalog.get_dataset(ds_id))}", name="copy")
    assert q["rowCount"] == 9


def test_bad_records_fail_the_batch_with_a_named_field_and_no_rows(client):
    ds_id, tenant = event_dataset(client, "contract bad json")
    multi = json.dumps(records(tenant), indent=2).encode()
    with pytest.raises(errors.BatchFailed, match="isMultiLineJson"):
        ingest_json(client, ds_id, multi, multiline=False)
    bad_type = [{**r, "timestamp": "not a time"} for r in records(tenant)]
    with pytest.raises(errors.BatchFailed, match="timestamp"):
        ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in bad_type).encode())
    missing = [{k: v for k, v in r.items() if k != "_id"} for r in records(tenant)]
    with pytest.raises(errors.BatchFailed, match="'_id'"):
        ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in missing).encode())
    assert list(client.catalog.iter_batches(ds_id, status="success")) == []
    failed = list(client.catalog.iter_batches(ds_id, status="failed"))
    assert len(failed) == 3 and all(b["errors"][0]["code"] and b["errors"][0]["description"] for b in failed)


def test_profile_datasets_need_the_primary_identity_on_every_record(client):
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    profile_ds = client.catalog.create_dataset("contract identity profiles", platform.schema_id("profile"),
                                               profile=True)["id"]
    rows = [{"_id": "p1", f"_{tenant}": {"userid": "u1"}}, {"_id": "p2", f"_{tenant}": {"userid": None}}]
    with pytest.raises(errors.BatchFailed, match=f"_{tenant}/userid"):
        ingest_json(client, profile_ds, "\n".join(json.dumps(r) for r in rows).encode())
    lake_only, _ = event_dataset(client, "contract identity events")  # not profile-enabled
    event = [{**records(tenant, 1)[0], f"_{tenant}": {"userid": None}}]
    assert ingest_json(client, lake_only, json.dumps(event[0]).encode())["status"] == "success"


def test_replay_replaces_earlier_batches_and_their_files(sandbox, client):
    ds_id, tenant = event_dataset(client, "contract replay")
    table = pa.table({"_id": ["r1", "r2"], "timestamp": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
                      f"_{tenant}": pa.StructArray.from_arrays([pa.array(["a", "b"])], names=["userid"])})
    first = replace_rows(client, ds_id, [table])
    second = replace_rows(client, ds_id, [table.slice(0, 1)])
    assert [b["id"] for b in client.catalog.iter_batches(ds_id, status="success")] == [second["id"]]
    assert client.catalog.get_batch(first["id"])["status"] == "inactive"
    assert not list(sandbox.data_dir.glob(f"files/*/prod/datasets/{ds_id}/batch={first['id']}"))
    assert list(sandbox.data_dir.glob(f"files/*/prod/datasets/{ds_id}/batch={second['id']}"))


def test_a_batch_holds_at_most_1500_files(client):
    # §5 limits: 1500 files per batch.
    ds_id, tenant = event_dataset(client, "file limit")
    batch_id = _batch(client, ds_id)
    data = _parquet(tenant, 1)
    for i in range(1500):
        client.ingestion.upload_file(batch_id, ds_id, f"f{i}.parquet", data)
    with pytest.raises(errors.BadRequest, match="at most 1500 files"):
        client.ingestion.upload_file(batch_id, ds_id, "one-too-many.parquet", data)
