"""Catalog (``/data/foundation/catalog``): datasets and the batches that fill them.

reference/aep_api.md §4. Catalog is the only owner of dataset and batch objects: ingestion, Query Service,
the profile store, the PostgreSQL endpoint and crash recovery create, read and change them through
``CatalogBackend``, never through the store (test_sandbox_catalog_contract.py checks this). Objects come
back in the shape of Adobe's documented samples (``view``, ``batch_view``). Not modelled yet: dataSetFiles
and dataSetViews.
"""

import re
import secrets
import uuid

from . import errors, filters, patching
from .http import Call, Router
from .schema_registry import SchemaRegistryBackend
from .store import Scope, now_ms
from .xdm import ADHOC_CLASS

BASE = "/data/foundation/catalog"
DATASET, BATCH = "dataset", "batch"
PQS_TABLE_TAG = "adobe/pqs/table"
PROFILE_TAG = "unifiedProfile"


def table_name_for(name: str) -> str:
    """Query Service table name of a dataset: lowercase, non-SQL-safe characters to ``_``."""
    base = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "dataset"
    return base if not base[0].isdigit() else "_" + base


EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"


def sandbox_id(org: str, sandbox: str) -> str:
    """A stable UUID per (org, sandbox), as AEP gives every sandbox one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aep-sandbox:{org}/{sandbox}"))


class CatalogBackend:
    def __init__(self, scope: Scope, registry: SchemaRegistryBackend | None = None) -> None:
        self.scope, self.registry = scope, registry  # no registry: batch and dataset bookkeeping only

    # datasets --------------------------------------------------------------------------------
    def datasets(self) -> list[dict]:
        return self.scope.list(DATASET)

    def touch_dataset(self, ds_id: str, **fields) -> dict:
        """Set ``fields`` (None removes one) and the dataset's ``updated`` time."""
        def change(body: dict) -> dict:
            for key, value in fields.items():
                if value is None:
                    body.pop(key, None)
                else:
                    body[key] = value
            body["updated"] = now_ms()
            return body

        return self.scope.update(DATASET, ds_id, change)

    def forget_dataset(self, ds_id: str) -> None:
        """Drop the dataset object alone (a CTAS table whose rows never landed); its files are the lake's."""
        self.scope.delete(DATASET, ds_id)

    # batches ---------------------------------------------------------------------------------
    def new_batch(self, ds_id: str, *, input_format: dict, client: str, replay: dict | None = None,
                  tags: dict | None = None, status: str = "loading", **extra) -> dict:
        """A batch of ``ds_id`` in the shape of help/ingestion/batch-ingestion/api-overview.md's sample."""
        now, batch_id = now_ms(), secrets.token_hex(16)
        batch = {"id": batch_id, "imsOrg": self.scope.org, "status": status,
                 "relatedObjects": [{"type": "dataSet", "id": ds_id}], "inputFormat": input_format,
                 "replay": replay, "tags": tags or {}, "version": "1.0.0", "externalId": batch_id,
                 "created": now, "updated": now, "createdClient": client, "createdUser": client,
                 "updatedUser": client, "errors": [], "metrics": {}, "files": [], **extra}
        return self.scope.put(BATCH, batch_id, batch)

    def batches(self) -> list[dict]:
        return self.scope.list(BATCH)

    def fail_interrupted_batch(self, batch_id: str) -> dict:
        """End a batch whose process died while it staged or processed it (recovery.py): failed, retryable."""
        return self.update_batch(batch_id, completed=now_ms(), status="failed", errors=[
            {"code": "INTERNAL", "description": "The sandbox stopped while it processed this batch; ingest its "
                                                "files again in a new batch."}])

    def find_batch(self, batch_id: str) -> dict | None:
        return self.scope.get(BATCH, batch_id)

    def update_batch(self, batch_id: str, **fields) -> dict:
        def change(body: dict) -> dict:
            body.update(fields)
            body["updated"] = now_ms()
            return body

        return self.scope.update(BATCH, batch_id, change)

    def add_batch_file(self, batch_id: str, name: str) -> dict:
        def add(body: dict) -> dict:
            if name not in body["files"]:
                body["files"].append(name)
            body["updated"] = now_ms()
            return body

        return self.scope.update(BATCH, batch_id, add)

    def batch_succeeded(self, batch_id: str, metrics: dict, **fields) -> dict:
        """The batch's rows are visible from now on; its dataset was updated (and a CTAS table's rows landed)."""
        batch = self.update_batch(batch_id, status="success", completed=now_ms(), metrics=metrics, **fields)
        self.touch_dataset(_batch_dataset(batch), ctasWorker=None)
        return batch

    def batch_view(self, batch: dict) -> dict:
        """The batch as AEP returns it (help/ingestion/batch-ingestion/partial.md): without the sandbox's own
        bookkeeping (the processing worker, the uploaded file names) and without an empty ``replay``."""
        return {k: v for k, v in batch.items()
                if k not in ("worker", "files") and not (k == "replay" and v is None)}

    def create_dataset(self, body: dict, *, table: str | None = None, client: str = "API") -> dict:
        name = body.get("name")
        if not name:
            raise errors.CatalogBadRequest("'name' is required to create a dataset.")
        schema_ref = (body.get("schemaRef") or {}).get("id")
        if not schema_ref:
            raise errors.CatalogBadRequest("'schemaRef.id' must name the XDM schema of the dataset.")
        try:
            schema = self.registry.get(schema_ref, "schemas")
        except errors.XdmNotFound:
            raise errors.CatalogBadRequest(f"schemaRef.id {schema_ref!r} is not a schema of this sandbox.") from None
        tags = dict(body.get("tags") or {})
        self._check_profile_tags(tags, schema)
        taken = {t for d in self.scope.list(DATASET) for t in d["tags"].get(PQS_TABLE_TAG, [])}
        table = table or table_name_for(name)
        base, n = table, 1
        while table in taken:
            table, n = f"{base}_{n}", n + 1
        tags[PQS_TABLE_TAG] = [table]
        ds_id = secrets.token_hex(12)
        now = now_ms()
        ds = {"name": name, "description": body.get("description", ""), "imsOrg": self.scope.org, "tags": tags,
              "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"},
              "fileDescription": body.get("fileDescription") or {"persisted": True, "containerFormat": "parquet",
                                                                  "format": "parquet"},
              "created": now, "updated": now, "createdClient": client, "createdUser": client,
              "version": "1.0.0", "state": "ENABLED", "viewId": secrets.token_hex(12),
              "files": f"@/dataSetFiles?dataSetId={ds_id}", "id": ds_id,
              "extensions": {"adobe_lakeHouse": {}, "adobe_unifiedProfile": {}}}
        self.scope.put(DATASET, ds_id, ds, name=name)
        return ds

    def view(self, ds: dict) -> dict:
        """The dataset as AEP returns it (help/catalog/api): the stored object plus what Catalog derives:
        ``classification`` from the schema's class (Experience Event schemas are time series, the others
        records), the sandbox's id, and the last batch's id and status."""
        schema = self.scope.get("xdm", ds["schemaRef"]["id"]) or {}
        behaviour = "time-series" if schema.get("meta:class") == EVENT_CLASS else "record"
        batches = self.batches_of(ds["id"])
        last = max(batches, key=lambda b: b["created"]) if batches else None
        shown = {k: v for k, v in ds.items() if k != "ctasWorker"}
        return {"extensions": {"adobe_lakeHouse": {}, "adobe_unifiedProfile": {}}, **shown,
                "classification": {"dataBehavior": behaviour, "managedBy": "CUSTOMER"},
                "sandboxId": sandbox_id(self.scope.org, self.scope.sandbox),
                "updatedUser": ds.get("updatedUser", ds.get("createdUser")),
                **({"lastBatchId": last["id"], "lastBatchStatus": last["status"]} if last else {})}

    def _check_profile_tags(self, tags: dict, schema: dict) -> None:
        if any(v.startswith("enabled:true") for v in tags.get(PROFILE_TAG, [])):
            if "union" not in (schema.get("meta:immutableTags") or []):
                raise errors.CatalogBadRequest(
                    "To enable profile datasets the schema should be valid: enable the schema for Profile "
                    "(meta:immutableTags ['union']) first.")

    def dataset(self, ds_id: str) -> dict:
        ds = self.scope.get(DATASET, ds_id)
        if ds is None:
            raise errors.CatalogNotFound(f"Dataset {ds_id!r} was not found in this sandbox.")
        return ds

    def dataset_by_table(self, table: str) -> dict | None:
        for ds in self.datasets():
            if table.lower() in ds["tags"].get(PQS_TABLE_TAG, []):
                return ds
        return None

    def patch_dataset(self, ds_id: str, ops: list[dict]) -> dict:
        """JSON Patch on the dataset's tags, the part of a dataset Catalog lets clients change this way
        (help/catalog/datasets/enable-for-profile.md enables Profile with it)."""
        ds = self.dataset(ds_id)
        patched = patching.apply({"tags": ds["tags"]}, ops, allow=_tags_only, error=errors.CatalogBadRequest)
        self._check_profile_tags(patched["tags"], self.registry.get(ds["schemaRef"]["id"], "schemas"))
        return self.touch_dataset(ds_id, tags=patched["tags"])

    def delete_dataset(self, ds_id: str, lake) -> None:
        ds = self.dataset(ds_id)
        for batch in self.batches_of(ds_id):
            self.scope.delete(BATCH, batch["id"])
        self.scope.delete(DATASET, ds_id)
        lake.delete_dataset(self.scope.org, self.scope.sandbox, ds_id)
        schema = self.scope.get("xdm", ds["schemaRef"]["id"])
        if schema and schema.get("meta:class") == ADHOC_CLASS:  # a CTAS table's ad hoc schema goes with it
            self.scope.delete("xdm", schema["$id"])

    def batches_of(self, ds_id: str, status: str | None = None) -> list[dict]:
        out = [b for b in self.scope.list(BATCH) if _batch_dataset(b) == ds_id]
        if status:
            out = [b for b in out if b["status"] == status]
        return sorted(out, key=lambda b: (b.get("completed") or 0, b["created"]))

    def active_batches(self, ds_id: str) -> list[dict]:
        """Batches whose rows are visible: successful and not replaced, oldest first."""
        return self.batches_of(ds_id, status="success")

    def active_files(self, ds_id: str, lake) -> list:
        """The Parquet files holding the dataset's visible rows."""
        return [p for b in self.active_batches(ds_id)
                for p in lake.batch_files(self.scope.org, self.scope.sandbox, ds_id, b["id"])]


def _tags_only(operation: patching.Operation, _: dict) -> None:
    if operation.op not in ("add", "replace", "remove") or len(operation.path) < 2 or operation.path[0] != "tags":
        raise errors.CatalogBadRequest(f"Only add, replace or remove on /tags/<name> can patch a dataset, not "
                                       f"{operation.op} on /{'/'.join(operation.path)}.")


def _batch_dataset(batch: dict) -> str | None:
    for rel in batch.get("relatedObjects") or []:
        if rel.get("type") == "dataSet":
            return rel.get("id")
    return None


def list_objects(call: Call, items: list[dict], simple: dict[str, str]) -> tuple[int, dict]:
    """Catalog list semantics: objects keyed by id, ``{}`` when nothing matches."""
    params = call.params
    try:
        limit = int(params.get("limit", 20))
        start = int(params.get("start", 0))
    except ValueError:
        raise errors.CatalogBadRequest("'limit' and 'start' must be integers.") from None
    if not 1 <= limit <= 100:
        raise errors.CatalogBadRequest(f"'limit' must be between 1 and 100, got {limit}.")
    for param, field in simple.items():
        wanted = params.get(param)
        if wanted is None:
            continue
        negate = wanted.startswith("!")
        values = set(wanted.lstrip("!").split(","))
        items = [i for i in items if (str(filters.lookup(i, field)) in values) != negate]
    items = [i for i in items if filters.matches(i, filters.parse(params.getlist("property")))]
    for wanted in params.getlist("tags"):  # tags=name:value, value * for any
        tag, _, value = wanted.partition(":")
        items = [i for i in items if tag in (i.get("tags") or {})
                 and (value in ("", "*") or value in (i["tags"][tag] or []))]
    for param, keep in (("createdAfter", lambda c, t: c > t), ("createdBefore", lambda c, t: c < t)):
        if params.get(param) is not None:
            try:
                bound = int(params[param])
            except ValueError:
                raise errors.CatalogBadRequest(f"'{param}' must be a Unix time in milliseconds, "
                                               f"got {params[param]!r}.") from None
            items = [i for i in items if keep(int(i.get("created") or 0), bound)]
    order = params.get("orderBy")
    if order:
        for key in reversed(order.split(",")):
            desc = key.startswith("desc:")
            field = key.split(":", 1)[-1]
            items.sort(key=lambda i, f=field: (filters.lookup(i, f) is None, filters.lookup(i, f) or 0),
                       reverse=desc)
    page = items[start:start + limit]
    props = params.get("properties")
    out = {}
    for item in page:
        obj = {k: v for k, v in item.items() if k != "id"}
        if props:
            obj = {k: v for k, v in obj.items() if k in props.split(",")}
        out[item["id"]] = obj
    return 200, out


def register(router: Router) -> None:
    platform = router.platform

    def backend(call: Call) -> CatalogBackend:
        return CatalogBackend(call.scope, SchemaRegistryBackend(call.scope, platform.credentials.tenant_id))

    def create_dataset(call: Call):
        ds = backend(call).create_dataset(call.json())
        return 201, [f"@/dataSets/{ds['id']}"]

    def list_datasets(call: Call):
        catalog = backend(call)
        return list_objects(call, [catalog.view(ds) for ds in catalog.datasets()], {"name": "name"})

    def get_dataset(call: Call):
        catalog = backend(call)
        ds = catalog.view(catalog.dataset(call.path["id"]))
        return 200, {ds["id"]: {k: v for k, v in ds.items() if k != "id"}}

    def patch_dataset(call: Call):
        ops = call.json(list)
        if not isinstance(ops, list):
            raise errors.CatalogBadRequest("A dataset PATCH body is a JSON Patch array "
                                           "(Content-Type: application/json-patch+json).")
        ds = backend(call).patch_dataset(call.path["id"], ops)
        return 200, [f"@/dataSets/{ds['id']}"]

    def delete_dataset(call: Call):
        backend(call).delete_dataset(call.path["id"], platform.lake)
        return 200, [f"@/dataSets/{call.path['id']}"]

    def list_batches(call: Call):
        catalog = backend(call)
        return list_objects(call, [{**catalog.batch_view(b), "id": b["id"]} for b in catalog.batches()],
                            {"dataSet": "relatedObjects.0.id", "status": "status"})

    def get_batch(call: Call):
        applied = call.wait_for_change("batch", call.path["id"])
        catalog = backend(call)
        b = catalog.find_batch(call.path["id"])
        if b is None:
            raise errors.CatalogNotFound(f"Batch {call.path['id']!r} was not found in this sandbox.")
        platform.lifecycles.observed("batch", b["id"])
        return 200, {b["id"]: catalog.batch_view(b)}, applied  # partial.md: the id is both the key and a field

    router.add(f"{BASE}/dataSets", ["POST"], create_dataset)
    router.add(f"{BASE}/dataSets", ["GET"], list_datasets)
    router.add(f"{BASE}/dataSets/{{id}}", ["GET"], get_dataset)
    router.add(f"{BASE}/dataSets/{{id}}", ["PATCH"], patch_dataset)
    router.add(f"{BASE}/dataSets/{{id}}", ["DELETE"], delete_dataset)
    router.add(f"{BASE}/batches", ["GET"], list_batches)
    router.add(f"{BASE}/batches/{{id}}", ["GET"], get_batch)
