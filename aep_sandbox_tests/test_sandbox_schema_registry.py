"""Schema Registry contract (reference/aep_api.md §3): Accept rules, tenant namespace, unions, titles, patches."""

import requests

from aep_assets.pipeline.schemas import ensure_schemas

from .contract import headers, profile_schema_without_identity


def test_union_without_primary_identity_is_xdm_1528(sandbox, client):
    # §3.7.
    schema = profile_schema_without_identity(client, "contract no identity")
    r = requests.patch(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas/{schema['meta:altId']}",
                       headers=headers(client),
                       json=[{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}])
    assert r.status_code == 400 and r.json()["type"].endswith("XDM-1528-400")


def test_custom_field_outside_the_tenant_namespace_is_refused(sandbox, client):
    # §3.8.
    r = requests.post(f"{sandbox.url}/data/foundation/schemaregistry/tenant/fieldgroups", headers=headers(client),
                      json={"title": "outside", "type": "object",
                            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
                            "definitions": {"f": {"properties": {"loose": {"type": "string"}}}}})
    assert r.status_code == 400 and r.json()["type"].endswith("XDM-1020-400")


def test_schema_lookup_needs_a_versioned_accept(sandbox, client):
    # §3.1.
    schema = ensure_schemas(client).schemas["event"]
    r = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas/{schema['meta:altId']}",
                     headers=headers(client, Accept="application/vnd.adobe.xed+json"))
    assert r.status_code == 400


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
    r = requests.patch(url, headers=headers(client), json=[
        {"op": "remove", "path": f"/definitions/customFields/properties/_{tenant}/properties/first"}])
    assert r.status_code == 400 and "additive" in r.json()["detail"]
    assert client.schemas.ensure_fieldgroup(body)[0]["version"] == "1.1"  # nothing missing: no patch


def test_a_duplicate_title_is_xdm_1521(sandbox, client):
    # §3.8: titles are unique per tenant.
    body = {"title": "aep_assets Event schema", "type": "object",
            "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]}
    r = requests.post(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas", headers=headers(client),
                      json=body)
    assert r.status_code == 400 and r.json()["type"].endswith("XDM-1521-400")


def test_lists_filter_by_title_and_full_resolution_flattens_field_groups(sandbox, client):
    # §3.1: property=title==..., and application/vnd.adobe.xed-full+json;version=1.
    tenant = client.schemas.tenant_id()
    r = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas",
                     params={"property": "title==aep_assets Event schema"},
                     headers=headers(client, Accept="application/vnd.adobe.xed-id+json"))
    assert r.status_code == 200 and [s["title"] for s in r.json()["results"]] == ["aep_assets Event schema"]
    alt = r.json()["results"][0]["meta:altId"]
    full = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/tenant/schemas/{alt}",
                        headers=headers(client, Accept="application/vnd.adobe.xed-full+json; version=1")).json()
    assert "userid" in full["properties"][f"_{tenant}"]["properties"] and "timestamp" in full["properties"]
