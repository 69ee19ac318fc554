"""Catalog objects key by key against Adobe's documented samples, and Catalog as the only owner of dataset and
batch objects inside the sandbox.

Each sample below lists the keys (and nested keys) of one response printed in Adobe's docs
(``AdobeDocs/experience-platform.en``), with the JSON type of each value. The sandbox's object must have every
one of them with a value of that type; keys the sandbox adds must come from another documented sample, so
nothing undocumented reaches a client.
"""

import ast
from pathlib import Path

import pyarrow as pa
import requests

from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for, replace_rows
from .contract import headers

CATALOG = "/data/foundation/catalog"
S, N, D, L = str, int, dict, list  # the JSON types: string, number, object, array

# help/catalog/api/update-object.md, the dataset before and after a /v2 PATCH (the current page and its
# translations). "basePath" and "persistence" describe Adobe's ADLS Gen2 storage of the dataset, which a local
# sandbox does not have, so they are the documented keys it leaves out.
DATASET_UPDATE_OBJECT = {
    "name": S, "description": S, "tags": D, "classification": {"dataBehavior": S, "managedBy": S},
    "createdUser": S, "imsOrg": S, "sandboxId": S, "createdClient": S, "updatedUser": S, "version": S,
    "extensions": {"adobe_lakeHouse": D, "adobe_unifiedProfile": D}, "created": N, "updated": N, "viewId": S,
    "fileDescription": D, "files": S, "schemaRef": {"id": S, "contentType": S},
}
NOT_IN_A_LOCAL_SANDBOX = {"basePath", "persistence"}
# help/catalog/datasets/enable-for-profile.md, "Check if the dataset is enabled".
DATASET_ENABLE_FOR_PROFILE = {
    "name": S, "imsOrg": S, "tags": D, "version": S, "created": N, "updated": N, "createdClient": S,
    "createdUser": S, "updatedUser": S, "viewId": S, "files": S, "schemaRef": {"id": S, "contentType": S},
}
# help/catalog/api/look-up-object.md and list-objects.md: state; the lastBatch* fields of a dataset with batches
# are in the same page's earlier revisions and in help/query-service's API exercises.
DATASET_OTHER_DOCUMENTED = {"state": S, "lastBatchId": S, "lastBatchStatus": S}
# help/ingestion/batch-ingestion/partial.md, "Check status" (a finished batch; "id" is also a field).
BATCH_PARTIAL = {
    "status": S, "tags": D, "relatedObjects": L, "id": S, "externalId": S, "inputFormat": {"format": S},
    "imsOrg": S, "started": N, "completed": N, "created": N, "createdClient": S, "createdUser": S,
    "updatedUser": S, "updated": N, "version": S,
    "metrics": {"inputByteSize": N, "inputFileCount": N, "inputRecordCount": N, "outputRecordCount": N,
                "failedRecordCount": N},
}
# help/ingestion/batch-ingestion/api-overview.md, "Create batch" (a batch still loading).
BATCH_CREATED = {
    "id": S, "imsOrg": S, "updated": N, "status": S, "created": N, "relatedObjects": L, "version": S, "tags": D,
    "createdUser": S, "updatedUser": S, "externalId": S, "createdClient": S, "inputFormat": {"format": S},
}
# help/ingestion/batch-ingestion/troubleshooting.md ("errors", the batch metrics table) and api-overview.md's
# batch replay ("replay"); the metrics reference/aep_api.md §5 lists.
BATCH_OTHER_DOCUMENTED = {"errors": L, "replay": D}
BATCH_METRICS_DOCUMENTED = {"inputByteSize", "inputFileCount", "inputRecordCount", "outputRecordCount",
                            "failedRecordCount", "outputByteSize", "outputFileCount", "partitionCount",
                            "recordsRead", "recordsWritten", "failureReason"}


def _mismatches(sample: dict, found: dict, where: str = "") -> list[str]:
    out = []
    for key, kind in sample.items():
        if key not in found:
            out.append(f"{where}{key}: missing")
        elif isinstance(kind, dict):
            if not isinstance(found[key], dict):
                out.append(f"{where}{key}: {type(found[key]).__name__}, documented as an object")
            else:
                out += _mismatches(kind, found[key], f"{where}{key}.")
        elif not isinstance(found[key], kind) or isinstance(found[key], bool):
            out.append(f"{where}{key}: {found[key]!r} is not a {kind.__name__}")
    return out


def _dataset(client, name: str, profile: bool) -> tuple[str, dict]:
    platform = ensure_schemas(client)
    ds = client.catalog.create_dataset(name, platform.schema_id("score" if profile else "event"), profile=profile)
    tenant = platform.tenant_id
    rows = {f"_{tenant}": pa.StructArray.from_arrays([pa.array(["c1", "c2"])], names=["userid"])}
    if not profile:
        rows = {"_id": ["e1", "e2"], "timestamp": pa.array([0, 1], pa.timestamp("us", tz="UTC")), **rows}
    replace_rows(client, ds["id"], [pa.table(rows)])
    body = requests.get(f"{client.config.platform_url}{CATALOG}/dataSets/{ds['id']}", headers=headers(client))
    return ds["id"], body.json()[ds["id"]]


def test_a_dataset_has_every_documented_field_and_no_undocumented_one(sandbox):
    client = client_for(sandbox)
    _, events = _dataset(client, "contract sample events", profile=False)
    _, profiles = _dataset(client, "contract sample profiles", profile=True)
    for found in (events, profiles):
        assert _mismatches(DATASET_UPDATE_OBJECT, found) == []
        assert _mismatches(DATASET_ENABLE_FOR_PROFILE, found) == []
        documented = {*DATASET_UPDATE_OBJECT, *DATASET_ENABLE_FOR_PROFILE, *DATASET_OTHER_DOCUMENTED}
        assert set(found) - documented == set(), "undocumented dataset fields"
        assert not NOT_IN_A_LOCAL_SANDBOX & set(found)
        assert found["files"].startswith("@/dataSetFiles?dataSetId=")
        assert found["lastBatchStatus"] == "success" and found["classification"]["managedBy"] == "CUSTOMER"
    # update-object.md: an Experience Event dataset is time-series; a Profile one is a record.
    assert events["classification"]["dataBehavior"] == "time-series"
    assert profiles["classification"]["dataBehavior"] == "record"
    assert events["sandboxId"] == profiles["sandboxId"]


def test_a_batch_has_every_documented_field_while_loading_and_once_done(sandbox):
    client = client_for(sandbox)
    ds_id, _ = _dataset(client, "contract sample batches", profile=False)
    url, hdrs = f"{client.config.platform_url}{CATALOG}/batches", headers(client)
    loading = client.session.json("POST", "/data/foundation/import/batches",
                                  json={"datasetId": ds_id, "inputFormat": {"format": "parquet"}})
    assert _mismatches(BATCH_CREATED, loading) == []
    done_id = next(b for b in client.catalog.iter_batches(ds_id) if b["status"] == "success")["id"]
    done = requests.get(f"{url}/{done_id}", headers=hdrs).json()[done_id]
    assert _mismatches(BATCH_PARTIAL, done) == []
    assert done["id"] == done["externalId"] == done_id
    assert done["metrics"]["outputRecordCount"] == 2 and done["metrics"]["failedRecordCount"] == 0
    listed = requests.get(url, params={"dataSet": ds_id}, headers=hdrs).json()
    for batch in listed.values():
        assert set(batch) - {*BATCH_PARTIAL, *BATCH_CREATED, *BATCH_OTHER_DOCUMENTED} == set()
        assert set(batch["metrics"]) <= BATCH_METRICS_DOCUMENTED


def test_only_catalog_reads_or_writes_dataset_and_batch_objects():
    """moto's rule: a service's state is reached only through its backend. Every other sandbox module asks
    CatalogBackend; none calls the store with the dataset or batch kind."""
    root = Path(__file__).resolve().parents[1] / "aep_assets" / "sandbox"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "catalog.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("put", "get", "list", "update", "delete") and node.args):
                kind = node.args[0]
                named = (isinstance(kind, ast.Constant) and kind.value in ("dataset", "batch")) or (
                    isinstance(kind, ast.Name) and kind.id in ("DATASET", "BATCH"))
                if named:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
