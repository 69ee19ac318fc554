"""Helpers shared by the sandbox contract tests: headers, a dataset, records, one JSON batch."""

from aep_assets.pipeline.schemas import ensure_schemas


def headers(client, **extra) -> dict:
    return client.session.headers(extra)


def event_dataset(client, name: str) -> tuple[str, str]:
    platform = ensure_schemas(client)
    return client.catalog.create_dataset(name, platform.schema_id("event"))["id"], platform.tenant_id


def records(tenant: str, n: int = 3) -> list[dict]:
    return [{"_id": f"j{i}", "timestamp": f"2026-01-0{i + 1}T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
             f"_{tenant}": {"userid": f"u{i}"}} for i in range(n)]


def ingest_json(client, ds_id: str, payload: bytes, multiline: bool = False) -> dict:
    batch = client.session.json("POST", "/data/foundation/import/batches", json={
        "datasetId": ds_id, "inputFormat": {"format": "json", "isMultiLineJson": multiline}})
    assert batch["status"] == "loading"  # §5: 201 loading
    client.ingestion.upload_file(batch["id"], ds_id, "records.json", payload)
    client.ingestion.complete_batch(batch["id"])
    return client.ingestion.wait_for_batch(batch["id"], timeout_s=30)


def profile_schema_without_identity(client, title: str) -> dict:
    """A profile-class schema with one tenant field and no identity descriptor (so not Profile-ready)."""
    tenant = client.schemas.tenant_id()
    fg, _ = client.schemas.ensure_fieldgroup({
        "title": f"{title} fg", "type": "object", "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
        "definitions": {"f": {"properties": {f"_{tenant}": {"type": "object",
                                                            "properties": {"x": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/f"}]})
    schema, _ = client.schemas.ensure_schema({"title": title, "type": "object", "allOf": [
        {"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": fg["$id"]}]})
    return schema


def scored_profiles(client, name: str, users: list[str], propensities: list[float]) -> str:
    """A profile-enabled score dataset of the users with their propensity; returns the tenant id."""
    import pyarrow as pa

    from .conftest import replace_rows

    platform = ensure_schemas(client)
    ds = client.catalog.create_dataset(name, platform.schema_id("score"), profile=True)
    fields = {"userid": pa.array(users), "propensity": pa.array(propensities)}
    replace_rows(client, ds["id"], [pa.table({f"_{platform.tenant_id}": pa.StructArray.from_arrays(
        list(fields.values()), names=list(fields))})])
    return platform.tenant_id
