"""The sandbox speaks AEP's HTTP API: paths, status codes, headers, JSON shapes (reference/aep_api.md)."""

import json

import pyarrow as pa
import pytest
import requests

from aep_assets.aep import errors
from aep_assets.pipeline.ingest import replace_dataset_rows
from aep_assets.pipeline.platform import ensure_schemas
from aep_assets.sandbox.server import SandboxProcess

from .conftest import client_for


def _headers(client, **extra) -> dict:
    return client.session.headers(extra)


def test_gateway_rejects_a_missing_token_with_adobe_io_body(sandbox):
    # §11.1 (1): Adobe I/O gateway errors.
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets")
    assert r.status_code == 401 and r.json() == {"error_code": "403010", "message": "Oauth token is missing"}


def test_gateway_rejects_an_invalid_token(sandbox, client):
    h = _headers(client, Authorization="Bearer nope")
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=h)
    assert r.status_code == 401 and r.json()["error_code"] == "401013"


def test_gateway_requires_the_api_key(sandbox, client):
    h = _headers(client)
    del h["x-api-key"]
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=h)
    assert r.status_code == 403 and r.json()["error_code"] == "403000"


def test_every_response_carries_a_request_id(sandbox, client):
    r = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/stats", headers=_headers(client))
    assert r.status_code == 200 and r.headers["x-request-id"]
    assert r.json()["tenantId"] == "aepsandbox"  # §3.2


def test_catalog_list_is_keyed_by_id_and_empty_is_an_object(sandbox, client):
    # §4.2: no match returns {} with 200; limit is 1-100.
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", params={"name": "no such name"},
                     headers=_headers(client))
    assert r.status_code == 200 and r.json() == {}
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", params={"limit": 0}, headers=_headers(client))
    assert r.status_code == 400 and "limit" in r.json()["detail"]


def test_dataset_create_returns_a_reference_array_and_a_pqs_table_tag(sandbox, client):
    # §4.1 and §4.2.
    schema_id = ensure_schemas(client).schema_id("event")
    r = requests.post(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=_headers(client),
                      json={"name": "Contract Events 1", "schemaRef": {"id": schema_id}})
    assert r.status_code == 201
    (ref,) = r.json()
    assert ref.startswith("@/dataSets/")
    ds_id = ref.split("/")[-1]
    body = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets/{ds_id}", headers=_headers(client)).json()
    assert list(body) == [ds_id] and body[ds_id]["tags"]["adobe/pqs/table"] == ["contract_events_1"]


def test_union_without_primary_identity_is_xdm_1528(sandbox, client):
    # §3.7.
    tenant = client.schemas.tenant_id()
    fg, _ = client.schemas.ensure_fieldgroup({
        "title": "contract no identity fg", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
        "definitions": {"f": {"properties": {f"_{tenant}": {"type": "object",
                                                            "properties": {"x": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/f"}]})
    schema, _ = client.schemas.ensure_schema({"title": "contract no identity", "type": "object", "allOf": [
        {"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": fg["$id"]}]})
    r = requests.patch(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas/{schema['meta:altId']}",
                       headers=_headers(client),
                       json=[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
    assert r.status_code == 400 and r.json()["type"].endswith("XDM-1528-400")


def test_custom_field_outside_the_tenant_namespace_is_refused(sandbox, client):
    # §3.8.
    r = requests.post(f"{sandbox.url}/data/foundation/schemaregistry/tenant/fieldgroups", headers=_headers(client),
                      json={"title": "outside", "type": "object",
                            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
                            "definitions": {"f": {"properties": {"loose": {"type": "string"}}}}})
    assert r.status_code == 400 and r.json()["type"].endswith("XDM-1020-400")


def test_schema_lookup_needs_a_versioned_accept(sandbox, client):
    # §3.1.
    schema = client.schemas.find_schema("aep_assets Event schema") or {}
    r = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas/{schema['meta:altId']}",
                     headers=_headers(client, Accept="application/vnd.adobe.xed+json"))
    assert r.status_code == 400


def test_query_is_accepted_then_runs_asynchronously(sandbox, client):
    # §7.3: 202 SUBMITTED, then SUCCESS with elapsedTime in ms.
    r = requests.post(f"{sandbox.url}/data/foundation/query/queries", headers=_headers(client),
                      json={"dbName": "prod:all", "sql": "SELECT 1 AS one", "name": "contract"})
    assert r.status_code == 202 and r.json()["state"] == "SUBMITTED"
    done = client.query.wait(r.json()["id"], timeout_s=30)
    assert done["state"] == "SUCCESS" and done["rowCount"] == 1 and isinstance(done["elapsedTime"], int)


def test_unknown_path_is_a_404(sandbox, client):
    r = requests.get(f"{sandbox.url}/data/foundation/nothing", headers=_headers(client))
    assert r.status_code == 404


def test_two_sandbox_processes_share_one_data_directory(sandbox):
    first = client_for(sandbox)
    schema_id = ensure_schemas(first).schema_id("event")
    with SandboxProcess(sandbox.data_dir) as second_process:
        second = client_for(second_process)
        ds = second.catalog.create_dataset("shared across processes", schema_id)
        assert first.catalog.get_dataset(ds["id"])["name"] == "shared across processes"
        assert second.schemas.tenant_id() == first.schemas.tenant_id()


def _event_dataset(client, name: str) -> tuple[str, str]:
    platform = ensure_schemas(client)
    return client.catalog.create_dataset(name, platform.schema_id("event"))["id"], platform.tenant_id


def _records(tenant: str, n: int = 3) -> list[dict]:
    return [{"_id": f"j{i}", "timestamp": f"2026-01-0{i + 1}T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
             f"_{tenant}": {"userid": f"u{i}"}} for i in range(n)]


def _ingest_json(client, ds_id: str, payload: bytes, multiline: bool = False) -> dict:
    batch = client.session.json("POST", "/data/foundation/import/batches", json={
        "datasetId": ds_id, "inputFormat": {"format": "json", "isMultiLineJson": multiline}})
    assert batch["status"] == "loading"  # §5: 201 loading
    client.ingestion.upload_file(batch["id"], ds_id, "records.json", payload)
    client.ingestion.complete_batch(batch["id"])
    return client.ingestion.wait_for_batch(batch["id"], timeout_s=30)


def test_json_lines_and_single_line_arrays_are_ingested(client):
    ds_id, tenant = _event_dataset(client, "contract json")
    lines = "\n".join(json.dumps(r) for r in _records(tenant)).encode()
    assert _ingest_json(client, ds_id, lines)["metrics"]["recordsWritten"] == 3
    array = json.dumps(_records(tenant, 2)).encode()  # what aepp's uploadSmallFile sends
    assert _ingest_json(client, ds_id, array)["metrics"]["recordsWritten"] == 2
    multi = json.dumps(_records(tenant, 4), indent=2).encode()
    assert _ingest_json(client, ds_id, multi, multiline=True)["metrics"]["recordsWritten"] == 4
    q = client.query.run(f"CREATE TABLE contract_json_copy AS SELECT * FROM "
                         f"{client.catalog.table_name(client.catalog.get_dataset(ds_id))}", name="copy")
    assert q["rowCount"] == 9


def test_bad_records_fail_the_batch_with_a_named_field_and_no_rows(client):
    ds_id, tenant = _event_dataset(client, "contract bad json")
    multi = json.dumps(_records(tenant), indent=2).encode()
    with pytest.raises(errors.BatchFailed, match="isMultiLineJson"):
        _ingest_json(client, ds_id, multi, multiline=False)
    bad_type = [{**r, "timestamp": "not a time"} for r in _records(tenant)]
    with pytest.raises(errors.BatchFailed, match="timestamp"):
        _ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in bad_type).encode())
    missing = [{k: v for k, v in r.items() if k != "_id"} for r in _records(tenant)]
    with pytest.raises(errors.BatchFailed, match="'_id'"):
        _ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in missing).encode())
    assert list(client.catalog.iter_batches(ds_id, status="success")) == []
    failed = list(client.catalog.iter_batches(ds_id, status="failed"))
    assert len(failed) == 3 and all(b["errors"][0]["code"] and b["errors"][0]["description"] for b in failed)


def test_profile_datasets_need_the_primary_identity_on_every_record(client):
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    profile_ds = client.catalog.create_dataset("contract identity profiles", platform.schema_id("profile"),
                                               profile=True)["id"]
    records = [{"_id": "p1", f"_{tenant}": {"userid": "u1"}}, {"_id": "p2", f"_{tenant}": {"userid": None}}]
    with pytest.raises(errors.BatchFailed, match=f"_{tenant}/userid"):
        _ingest_json(client, profile_ds, "\n".join(json.dumps(r) for r in records).encode())
    lake_only, _ = _event_dataset(client, "contract identity events")  # not profile-enabled
    event = [{**_records(tenant, 1)[0], f"_{tenant}": {"userid": None}}]
    assert _ingest_json(client, lake_only, json.dumps(event[0]).encode())["status"] == "success"


def test_replay_replaces_earlier_batches_and_their_files(sandbox, client):
    ds_id, tenant = _event_dataset(client, "contract replay")
    table = pa.table({"_id": ["r1", "r2"], "timestamp": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
                      f"_{tenant}": pa.StructArray.from_arrays([pa.array(["a", "b"])], names=["userid"])})
    first = replace_dataset_rows(client, ds_id, [table])
    second = replace_dataset_rows(client, ds_id, [table.slice(0, 1)])
    assert [b["id"] for b in client.catalog.iter_batches(ds_id, status="success")] == [second["id"]]
    assert client.catalog.get_batch(first["id"])["status"] == "inactive"
    assert not list(sandbox.data_dir.glob(f"files/*/prod/datasets/{ds_id}/batch={first['id']}"))
    assert list(sandbox.data_dir.glob(f"files/*/prod/datasets/{ds_id}/batch={second['id']}"))


def test_field_groups_take_additive_patches_only(sandbox, client):
    # §3: fields may be added to a field group in use, never changed or removed.
    tenant = client.schemas.tenant_id()
    body = {"title": "contract additive group", "type": "object",
            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
            "definitions": {"customFields": {"properties": {f"_{tenant}": {"type": "object", "properties": {
                "first": {"type": "string"}}}}}},
            "allOf": [{"$ref": "#/definitions/customFields"}]}
    created, was_created = client.schemas.ensure_fieldgroup(body)
    assert was_created and created["version"] == "1.0"
    fields = body["definitions"]["customFields"]["properties"][f"_{tenant}"]["properties"]
    fields["second"] = {"type": "number"}
    patched, was_created = client.schemas.ensure_fieldgroup(body)
    got = patched["definitions"]["customFields"]["properties"][f"_{tenant}"]["properties"]
    assert not was_created and set(got) == {"first", "second"} and patched["version"] == "1.1"
    url = f"{sandbox.url}/data/foundation/schemaregistry/tenant/fieldgroups/{created['meta:altId']}"
    r = requests.patch(url, headers=_headers(client), json=[
        {"op": "remove", "path": f"/definitions/customFields/properties/_{tenant}/properties/first"}])
    assert r.status_code == 400 and "additive" in r.json()["detail"]
    assert client.schemas.ensure_fieldgroup(body)[0]["version"] == "1.1"  # nothing missing: no patch
