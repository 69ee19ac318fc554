"""Catalog contract (reference/aep_api.md §4): keyed objects, {} when empty, every documented filter."""

import requests

from aep_assets.pipeline.schemas import ensure_schemas

from .contract import headers, profile_schema_without_identity


def test_catalog_list_is_keyed_by_id_and_empty_is_an_object(sandbox, client):
    # §4.2: no match returns {} with 200; limit is 1-100.
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", params={"name": "no such name"},
                     headers=headers(client))
    assert r.status_code == 200 and r.json() == {}
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", params={"limit": 0}, headers=headers(client))
    assert r.status_code == 400 and "limit" in r.json()["detail"]


def test_dataset_create_returns_a_reference_array_and_a_pqs_table_tag(sandbox, client):
    # §4.1 and §4.2.
    schema_id = ensure_schemas(client).schema_id("event")
    r = requests.post(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                      json={"name": "Contract Events 1", "schemaRef": {"id": schema_id}})
    assert r.status_code == 201
    (ref,) = r.json()
    assert ref.startswith("@/dataSets/")
    ds_id = ref.split("/")[-1]
    body = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets/{ds_id}", headers=headers(client)).json()
    assert list(body) == [ds_id] and body[ds_id]["tags"]["adobe/pqs/table"] == ["contract_events_1"]


def test_every_documented_list_filter(sandbox, client):
    # §4.2: name, limit, start, orderBy, properties, property=, tags=, createdAfter/createdBefore.
    schema_id = ensure_schemas(client).schema_id("event")
    made = [client.catalog.create_dataset(f"filter test {i}", schema_id) for i in range(3)]
    url, h = f"{sandbox.url}/data/foundation/catalog/dataSets", headers(client)

    def names(**params) -> list[str]:
        r = requests.get(url, params={"property": "name~^filter test", **params}, headers=h)
        assert r.status_code == 200
        return [v.get("name") for v in r.json().values()]

    assert names(orderBy="desc:created") == ["filter test 2", "filter test 1", "filter test 0"]
    assert names(orderBy="asc:created", limit=1, start=1) == ["filter test 1"]
    assert names(createdAfter=made[0]["created"], createdBefore=made[2]["created"]) == ["filter test 1"]
    assert names(name="filter test 2") == ["filter test 2"]
    only = requests.get(url, params={"name": "filter test 0", "properties": "name,schemaRef"}, headers=h).json()
    assert set(next(iter(only.values()))) == {"name", "schemaRef"}
    tagged = requests.get(url, params={"tags": "adobe/pqs/table:filter_test_1"}, headers=h).json()
    assert [v["name"] for v in tagged.values()] == ["filter test 1"]
    bad = requests.get(url, params={"createdAfter": "yesterday"}, headers=h)
    assert bad.status_code == 400 and "createdAfter" in bad.json()["detail"]


def test_profile_tags_need_a_union_schema(sandbox, client):
    # §4.3: a dataset is enabled for Profile only on a schema in the Profile union.
    schema = profile_schema_without_identity(client, "catalog no union")
    r = requests.post(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                      json={"name": "catalog no union ds", "schemaRef": {"id": schema["$id"]},
                            "tags": {"unifiedProfile": ["enabled:true"]}})
    assert r.status_code == 400 and "union" in r.json()["detail"].lower()


DATASET_KEYS = {"name", "description", "imsOrg", "sandboxId", "tags", "schemaRef", "fileDescription", "created",
                "updated", "createdClient", "createdUser", "updatedUser", "version", "state", "viewId", "files",
                "classification"}


def test_datasets_carry_every_field_aep_returns(sandbox, client):
    # A dataset object as Catalog returns it (help/catalog/api/list-objects.md, look-up-object.md; the Catalog
    # API reference's dataset model): classification.dataBehavior is time-series for Experience Event schemas and
    # record for Profile ones, managedBy CUSTOMER; lastBatchId/lastBatchStatus once a batch exists.
    import pyarrow as pa

    from .conftest import replace_rows

    platform = ensure_schemas(client)
    events = client.catalog.create_dataset("classified events", platform.schema_id("event"))
    client.catalog.create_dataset("classified profiles", platform.schema_id("profile"))
    listed = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client),
                          params={"property": "name~^classified"}).json()
    by_name = {d["name"]: d for d in listed.values()}
    assert set(by_name) == {"classified events", "classified profiles"}
    for d in by_name.values():
        assert DATASET_KEYS <= set(d), DATASET_KEYS - set(d)
        assert d["classification"]["managedBy"] == "CUSTOMER" and d["imsOrg"] == sandbox.credentials.org_id
        assert "lastBatchId" not in d  # no batch yet
    assert by_name["classified events"]["classification"]["dataBehavior"] == "time-series"
    assert by_name["classified profiles"]["classification"]["dataBehavior"] == "record"
    assert by_name["classified events"]["sandboxId"] == by_name["classified profiles"]["sandboxId"]

    tenant = platform.tenant_id
    batch = replace_rows(client, events["id"], [pa.table({
        "_id": ["c1"], "timestamp": pa.array([0], pa.timestamp("us", tz="UTC")), "eventType": ["x"],
        f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1"])], names=["userid"])})])
    got = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets/{events['id']}",
                       headers=headers(client)).json()[events["id"]]
    assert got["lastBatchId"] == batch["id"] and got["lastBatchStatus"] == "success"
    filtered = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=headers(client), params={
        "property": ["name~^classified", "classification.dataBehavior==time-series"]}).json()
    assert [d["name"] for d in filtered.values()] == ["classified events"]
