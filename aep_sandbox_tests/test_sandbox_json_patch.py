"""One JSON Patch (RFC 6902, the jsonpatch library) behind Schema Registry, Catalog and Flow Service: pointers
with escapes, array appends and the RFC's errors work the same in all three, each with its own rules on top."""

import json
from urllib.parse import quote

import pytest
import requests

from aep_assets.aep import errors
from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for
from .contract import event_dataset, headers, ingest_json, records

REGISTRY = "/data/foundation/schemaregistry/tenant"


def test_catalog_tags_take_escaped_pointers_and_nothing_outside_tags(sandbox):
    client = client_for(sandbox)
    ds_id, _ = event_dataset(client, "json patch tags")
    url = f"{sandbox.url}/data/foundation/catalog/dataSets/{ds_id}"
    # "~1" is "/" in a pointer: a tag whose name has slashes, as Adobe's own tags do.
    ok = requests.patch(url, headers=headers(client),
                        json=[{"op": "add", "path": "/tags/team~1owner", "value": ["ml"]}])
    assert ok.status_code == 200
    assert client.catalog.get_dataset(ds_id)["tags"]["team/owner"] == ["ml"]
    appended = requests.patch(url, headers=headers(client), json=[{"op": "add", "path": "/tags/team~1owner/-",
                                                                  "value": "data"}])
    assert appended.status_code == 200 and client.catalog.get_dataset(ds_id)["tags"]["team/owner"] == ["ml", "data"]
    outside = requests.patch(url, headers=headers(client), json=[{"op": "replace", "path": "/name", "value": "x"}])
    assert outside.status_code == 400 and "/tags/<name>" in outside.json()["detail"]
    missing = requests.patch(url, headers=headers(client), json=[{"op": "remove", "path": "/tags/no-such-tag"}])
    assert missing.status_code == 400 and "could not be applied" in missing.json()["detail"]
    assert client.catalog.get_dataset(ds_id)["tags"]["team/owner"] == ["ml", "data"]  # a failed patch changes nothing


def test_flow_patches_follow_the_rfc(sandbox):
    client = client_for(sandbox)
    ds_id, tenant = event_dataset(client, "json patch flow events")
    ingest_json(client, ds_id, "\n".join(json.dumps(r) for r in records(tenant)).encode())
    from aep_assets.aep.flow import ExportTarget

    flow, _ = client.flows.ensure_dataset_export_flow("json patch flow", ds_id, ExportTarget(kind="dlz", path="jp"))
    with pytest.raises(errors.BadRequest, match="could not be applied"):  # replace needs the member to exist
        client.flows.patch("flows", flow["id"], [{"op": "replace", "path": "/no/such/field", "value": 1}])
    with pytest.raises(errors.BadRequest, match="not add, replace or remove"):
        client.flows.patch("flows", flow["id"], [{"op": "move", "from": "/name", "path": "/title"}])
    done = client.flows.patch("flows", flow["id"], [{"op": "add", "path": "/scheduleParams/interval", "value": 2}])
    assert client.session.json("GET", f"/data/foundation/flowservice/flows/{done['id']}")["items"][0][
        "scheduleParams"]["interval"] == 2


def test_schema_patches_append_field_groups_and_keep_the_union_tag(sandbox):
    client = client_for(sandbox)
    platform = ensure_schemas(client)
    schema = client.schemas.get_schema(platform.schema_id("score"))
    url = f"{sandbox.url}{REGISTRY}/schemas/{quote(schema['$id'], safe='')}"
    hdrs = {**headers(client), "Accept": "application/vnd.adobe.xed+json"}
    body = {"title": "json patch extra", "type": "object", "meta:intendedToExtend": [schema["meta:class"]],
            "definitions": {"extra": {"properties": {f"_{platform.tenant_id}": {"type": "object", "properties": {
                "note": {"type": "string"}}}}}}, "allOf": [{"$ref": "#/definitions/extra"}]}
    fg, _ = client.schemas.ensure_fieldgroup(body)
    ok = requests.patch(url, headers=hdrs, json=[{"op": "add", "path": "/allOf/-", "value": {"$ref": fg["$id"]}},
                                                 {"op": "add", "path": "/meta:immutableTags", "value": []}])
    assert ok.status_code == 200, ok.text
    patched = ok.json()
    assert fg["$id"] in patched["meta:extends"] and "union" in patched["meta:immutableTags"]  # tags only grow
    unknown = requests.patch(url, headers=hdrs, json=[{"op": "add", "path": "/allOf/-",
                                                       "value": {"$ref": "https://ns.adobe.com/nope/mixins/x"}}])
    assert unknown.status_code == 404
    system = requests.patch(url, headers=hdrs, json=[{"op": "replace", "path": "/meta:class", "value": "x"}])
    assert system.status_code == 400 and "not supported on schemas" in system.json()["detail"]
