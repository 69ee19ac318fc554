"""Adobe's standard XDM in the sandbox (reference/xdm_standard.md): schemas composed by $ref from the standard
classes and field groups resolve with their real fields, batches are validated against them, identityMap
names exactly one primary identity on a Profile dataset, and Query Service reads the fields with AEP's syntax."""

import json

import pytest

from aep_assets.aep import errors

from .contract import ingest_json

EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE = "https://ns.adobe.com/xdm/context/profile"
GROUPS = {
    "identitymap": "https://ns.adobe.com/xdm/context/identitymap",
    "commerce": "https://ns.adobe.com/xdm/context/experienceevent-commerce",
    "web": "https://ns.adobe.com/xdm/context/experienceevent-web",
    "environment": "https://ns.adobe.com/xdm/context/experienceevent-environment-details",
    "direct_marketing": "https://ns.adobe.com/xdm/context/experienceevent-directmarketing",
    "person": "https://ns.adobe.com/xdm/context/profile-person-details",
    "contact": "https://ns.adobe.com/xdm/context/profile-personal-details",
    "loyalty": "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details",
}
ECID = "83238819066235616291057085344313877718"


def _schema(client, title: str, cls: str, *groups: str) -> dict:
    schema, _ = client.schemas.ensure_schema({"title": title, "type": "object",
                                              "allOf": [{"$ref": cls}, *({"$ref": GROUPS[g]} for g in groups)]})
    return client.schemas.get_schema(schema["$id"], full=True)


def test_an_event_schema_of_standard_field_groups_resolves_with_their_real_fields(client):
    props = _schema(client, "std events", EVENT, "commerce", "web", "environment", "direct_marketing")["properties"]
    # §1.1, §2.1-2.5
    assert props["identityMap"]["meta:xdmType"] == "map"
    assert set(props["identityMap"]["additionalProperties"]["items"]["properties"]) == {
        "id", "authenticatedState", "primary"}
    order = props["commerce"]["properties"]["order"]["properties"]
    assert order["priceTotal"]["type"] == "number" and order["createdDate"]["format"] == "date-time"
    assert props["commerce"]["properties"]["purchases"]["properties"]["value"]["type"] == "number"
    item = props["productListItems"]["items"]
    assert item["properties"]["quantity"]["type"] == "integer" and "SKU" in item["properties"]
    assert props["web"]["properties"]["webPageDetails"]["properties"]["isHomePage"]["type"] == "boolean"
    assert props["environment"]["properties"]["browserDetails"]["properties"]["userAgent"]["type"] == "string"
    assert props["device"]["properties"]["screenHeight"]["type"] == "integer"
    assert props["placeContext"]["properties"]["geo"]["properties"]["city"]["type"] == "string"
    assert props["directMarketing"]["properties"]["opens"]["properties"]["value"]["type"] == "number"


def test_a_profile_schema_of_standard_field_groups_resolves_with_their_real_fields(client):
    props = _schema(client, "std profiles", PROFILE, "identitymap", "person", "contact", "loyalty")["properties"]
    # §1.2, §2.6-2.9
    assert props["person"]["properties"]["birthDate"]["format"] == "date"
    assert props["person"]["properties"]["name"]["properties"]["lastName"]["type"] == "string"
    assert props["personalEmail"]["properties"]["address"]["type"] == "string"
    assert props["homeAddress"]["properties"]["countryCode"]["type"] == "string"
    assert props["mobilePhone"]["properties"]["number"]["type"] == "string"
    loyalty = props["loyalty"]["properties"]
    assert loyalty["points"]["type"] == "number" and loyalty["joinDate"]["format"] == "date-time"
    assert loyalty["loyaltyID"] == {"type": "array", "items": {"type": "string"}}


def _event(i: int, event_type: str, price: float | None = None) -> dict:
    record = {"_id": f"e{i}", "timestamp": f"2026-01-0{i + 1}T10:00:00Z", "eventType": event_type,
              "identityMap": {"ECID": [{"id": ECID, "primary": True}]}}
    if price is not None:
        record["commerce"] = {"order": {"purchaseID": f"o{i}", "priceTotal": price}, "purchases": {"value": 1.0}}
        record["productListItems"] = [{"SKU": f"SKU-{i}", "quantity": 2, "priceTotal": price}]
    return record


def test_query_service_reads_standard_fields_with_aeps_syntax(client):
    schema = _schema(client, "std events", EVENT, "commerce", "web", "environment", "direct_marketing")
    ds = client.catalog.create_dataset("std events", schema["$id"])
    records = [_event(0, "web.webpagedetails.pageViews"), _event(1, "commerce.purchases", 42.5),
               _event(2, "commerce.purchases", 7.25)]
    assert ingest_json(client, ds["id"], "\n".join(map(json.dumps, records)).encode())["status"] == "success"
    table = client.catalog.table_name(client.catalog.get_dataset(ds["id"]))
    rows = client.query.select(
        f"SELECT identityMap['ECID'][0].id AS ecid, commerce.order.priceTotal AS price, "
        f"productListItems[0].SKU AS sku, productListItems[0].quantity AS qty FROM {table} "
        f"WHERE eventType = 'commerce.purchases' ORDER BY price")
    assert rows == [{"ecid": ECID, "price": 7.25, "sku": "SKU-2", "qty": 2},
                    {"ecid": ECID, "price": 42.5, "sku": "SKU-1", "qty": 2}]
    assert client.query.select(f"SELECT identityMap['Email'][0].id AS email FROM {table} LIMIT 1") == [
        {"email": None}]  # an absent namespace is NULL, as in Query Service


def test_a_field_outside_the_standard_groups_fails_the_batch(client):
    schema = _schema(client, "std events", EVENT, "commerce", "web", "environment", "direct_marketing")
    ds = client.catalog.create_dataset("std events strict", schema["$id"])
    bad = {**_event(0, "commerce.purchases", 1.0), "commerce": {"order": {"priceTotl": 1.0}}}
    with pytest.raises(errors.BatchFailed) as exc:
        ingest_json(client, ds["id"], json.dumps(bad).encode())
    assert "commerce.order.priceTotl" in str(exc.value)


@pytest.mark.parametrize(("identities", "ok"), [
    ({"ECID": [{"id": ECID, "primary": True}], "Email": [{"id": "a@b.com", "primary": False}]}, True),
    ({"ECID": [{"id": ECID, "primary": True}], "Email": [{"id": "a@b.com", "primary": True}]}, False),
    ({"ECID": [{"id": ECID}]}, False),
])
def test_a_profile_dataset_needs_exactly_one_primary_identity_in_identity_map(client, identities, ok):
    # §4: in identityMap, exactly one entry across all namespaces has primary: true.
    schema = _schema(client, "std profiles", PROFILE, "identitymap", "person", "loyalty")
    client.schemas.enable_profile_union(client.schemas.get_schema(schema["$id"]))
    ds = client.catalog.create_dataset(f"std profiles {len(identities)} {ok}", schema["$id"], profile=True)
    record = {"_id": "p1", "identityMap": identities, "loyalty": {"tier": "gold", "points": 10.0}}
    if ok:
        assert ingest_json(client, ds["id"], json.dumps(record).encode())["status"] == "success"
        return
    with pytest.raises(errors.BatchFailed) as exc:
        ingest_json(client, ds["id"], json.dumps(record).encode())
    assert "IDENTITY-1001" in str(exc.value) and "exactly one primary identity" in str(exc.value)
