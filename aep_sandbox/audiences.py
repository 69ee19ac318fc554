"""The Audiences API, merge policies, and segment export jobs (``/data/core/ups``).

reference/aep_api.md §9. An audience of type ``SegmentDefinition`` is a segment definition seen
through the newer API (same id). There is one merge policy, the default: timestamp-ordered
attributes over the private identity graph, which is what the profile store does. An export job
evaluates its segments and writes the members' chosen fields into a dataset as one new batch. Not
modelled yet: externally generated audiences, other merge policies, export job scheduling.
"""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from . import errors
from .catalog import CatalogBackend
from .http import Call, Router
from .ingestion import IngestionBackend
from .names import quote_ident
from .pql import compile_pql
from .profile_store import MERGE_POLICY_ID, ProfileStore, merge_policy
from .schema_registry import SchemaRegistryBackend
from .segmentation import BASE, SegmentationBackend, job_getter
from .store import Scope, now_ms

EXPORT_JOB = "export_job"
def audience_view(seg: dict) -> dict:
    return {"id": seg["id"], "audienceId": seg["id"], "name": seg["name"], "description": seg.get("description", ""),
            "namespace": "AEPSegments", "type": "SegmentDefinition", "lifecycleState": "published",
            "originName": "REAL_TIME_CUSTOMER_PROFILE", "expression": seg["expression"], "schema": seg["schema"],
            "labels": seg.get("labels", []), "ttlInDays": seg.get("ttlInDays"), "imsOrgId": seg["imsOrgId"],
            "sandbox": seg["sandbox"], "createdEpoch": seg["creationTime"] // 1000, "updateEpoch": seg["updateEpoch"]}


class ExportJobs:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform
        self.segments = SegmentationBackend(scope, platform)
        self.catalog = CatalogBackend(scope, SchemaRegistryBackend(scope, platform.credentials.tenant_id))

    def create(self, body: dict) -> dict:
        ds_id = (body.get("destination") or {}).get("datasetId")
        if not ds_id:
            raise errors.SegmentBadRequest("destination.datasetId is required: the dataset the members go to.")
        try:
            self.catalog.dataset(ds_id)
        except errors.CatalogNotFound:
            raise errors.SegmentBadRequest(f"destination.datasetId {ds_id!r} is not a dataset here.") from None
        seg_ids = [s.get("segmentId") for s in (body.get("filter") or {}).get("segments") or []]
        if not seg_ids:
            raise errors.SegmentBadRequest("filter.segments must name at least one segmentId.")
        for seg_id in seg_ids:
            self.segments.get(seg_id)
        fields = [f.strip() for f in str(body.get("fields") or "").split(",") if f.strip()]
        now = now_ms()
        job = {"id": self._next_id(), "imsOrgId": self.scope.org, "status": "NEW", "fields": ",".join(fields),
               "mergePolicy": body.get("mergePolicy") or {"id": MERGE_POLICY_ID, "version": 1},
               "filter": body["filter"], "destination": {"datasetId": ds_id, "segmentPerBatch": False},
               "schema": body.get("schema") or {"name": "_xdm.context.profile"}, "creationTime": now,
               "updateTime": now, "metrics": {}}
        self.scope.put(EXPORT_JOB, str(job["id"]), job)
        self.platform.lifecycles.begin("export_job", str(job["id"]), lambda: self.run(job["id"], seg_ids, fields))
        return job

    def jobs(self, status: str | None = None) -> list[dict]:
        return [j for j in self.scope.list(EXPORT_JOB) if not status or j["status"] == status]

    def job(self, job_id: str) -> dict:
        job = self.scope.get(EXPORT_JOB, job_id)
        if job is None:
            raise errors.SegmentNotFound(f"Export job {job_id!r} was not found.")
        return job

    def _next_id(self) -> int:
        return max((int(j["id"]) for j in self.scope.list(EXPORT_JOB)), default=0) + 1

    def run(self, job_id: int, seg_ids: list[str], fields: list[str]) -> None:
        self.scope.update(EXPORT_JOB, str(job_id), lambda j: {**j, "status": "PROCESSING", "updateTime": now_ms()})
        try:
            ds_id = self.scope.get(EXPORT_JOB, str(job_id))["destination"]["datasetId"]
            table = self._members(seg_ids, [f for f in fields if not f.startswith("identities")], ds_id)
            ingestion = IngestionBackend(self.scope, self.platform)
            batch = ingestion.create_batch({"datasetId": ds_id, "inputFormat": {"format": "parquet"}},
                                           client="segmentation-export")
            buf = io.BytesIO()
            pq.write_table(table, buf)
            ingestion.upload(batch["id"], ds_id, "members.parquet", buf.getvalue())
            ingestion.process(batch["id"])
            done = ingestion.batch(batch["id"])
            if done["status"] != "success":
                raise ValueError(f"batch {batch['id']} failed: {done['errors']}")
        except Exception as exc:  # the job records the failure, as AEP's does
            failure = [{"code": "0100000003", "msg": str(exc)}]
            self.scope.update(EXPORT_JOB, str(job_id), lambda j: {**j, "status": "FAILED", "updateTime": now_ms(),
                                                                  "errors": failure})
            raise
        self.scope.update(EXPORT_JOB, str(job_id), lambda j: {
            **j, "status": "SUCCEEDED", "updateTime": now_ms(),
            "destination": {**j["destination"], "batchId": batch["id"]},
            "metrics": {"totalExportedProfileCounter": table.num_rows,
                        "profileExportTime": {"start": j["creationTime"], "end": now_ms()}}})

    def _members(self, seg_ids: list[str], fields: list[str], ds_id: str) -> pa.Table:
        """One row per profile in any of the segments: the dataset schema's primary identity and the fields,
        nested as XDM."""
        store = ProfileStore(self.scope, self.platform)
        compiled = [compile_pql(self.segments.get(s)["expression"]["value"]) for s in seg_ids]
        paths = sorted({p for c in compiled for p in c.paths} | set(fields))
        where = " OR ".join("(" + c.sql.replace('"p', f'"q{i}_') + ")" for i, c in enumerate(compiled))
        renames = "".join(f', "p{paths.index(p)}" AS "q{i}_{j}"' for i, c in enumerate(compiled)
                          for j, p in enumerate(c.paths))
        picks = "".join(f", {quote_ident(f'p{paths.index(f)}')} AS {quote_ident(f)}" for f in fields)
        con = store.connect()
        try:
            rows = con.sql(f"SELECT identity{picks} FROM (SELECT *{renames} FROM ({store.attributes_sql(paths)})) "
                           f"WHERE {where} ORDER BY identity").to_arrow_table()
        finally:
            con.close()
        schema_id = self.catalog.dataset(ds_id)["schemaRef"]["id"]
        ident = self.catalog.registry.primary_identity(schema_id)
        if ident is None:
            raise ValueError(f"Dataset {ds_id}'s schema has no primary identity to write the members under.")
        return _nest(rows, ident["xdm:sourceProperty"].strip("/").replace("/", "."), fields)


def _nest(rows: pa.Table, identity_path: str, fields: list[str]) -> pa.Table:
    """Flat dotted columns to nested XDM structs, with the identity at its schema path."""
    tree: dict = {}
    for path, column in [(identity_path, rows.column("identity")), *[(f, rows.column(f)) for f in fields]]:
        node = tree
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = column.combine_chunks()

    def build(node: dict) -> pa.Array:
        return pa.StructArray.from_arrays([build(v) if isinstance(v, dict) else v for v in node.values()],
                                          names=list(node))

    return pa.table({k: build(v) if isinstance(v, dict) else v for k, v in tree.items()})


def register(router: Router) -> None:
    platform = router.platform

    def create_audience(call: Call):
        body = call.json()
        if body.get("type", "SegmentDefinition") != "SegmentDefinition":
            raise errors.SegmentBadRequest("Only audiences of type 'SegmentDefinition' can be created here.")
        segments = SegmentationBackend(call.scope, platform)
        seg = segments.create(body)
        if body.get("labels"):
            seg = segments.label(seg["id"], body["labels"])
        return 200, audience_view(seg)

    def list_audiences(call: Call):
        items = [audience_view(s) for s in SegmentationBackend(call.scope, platform).segments()]
        name = call.params.get("name")
        if name:
            items = [a for a in items if a["name"] == name]
        for clause in call.params.getlist("property"):
            key, _, value = clause.partition("==")
            items = [a for a in items if str(a.get(key)) == value]
        limit, start = call.int_param("limit", 20), call.int_param("start", 0)
        page = items[start:start + limit]
        more = start + limit < len(items)
        # Segmentation's spec: next is the start of the next page, an integer, present only when there is one.
        return 200, {"children": page, "_page": {"totalCount": len(items), "pageSize": len(page),
                                                 **({"next": start + limit} if more else {})}}

    def get_audience(call: Call):
        return 200, audience_view(SegmentationBackend(call.scope, platform).get(call.path["id"]))

    def delete_audience(call: Call):
        SegmentationBackend(call.scope, platform).delete(call.path["id"])
        return 204, None

    def merge_policies(call: Call):
        return 200, {"children": [merge_policy(call.scope)], "_page": {"totalCount": 1, "pageSize": 1, "count": 1},
                     "_links": {}}

    def get_merge_policy(call: Call):
        if call.path["id"] != MERGE_POLICY_ID:
            raise errors.SegmentNotFound(f"Merge policy {call.path['id']!r} was not found.")
        return 200, merge_policy(call.scope)

    def create_export(call: Call):
        return 200, ExportJobs(call.scope, platform).create(call.json())

    def list_exports(call: Call):
        items = ExportJobs(call.scope, platform).jobs(call.params.get("status"))
        return 200, {"records": items[: call.int_param("limit", 100)], "link": {}}

    router.add(f"{BASE}/audiences", ["POST"], create_audience)
    router.add(f"{BASE}/audiences", ["GET"], list_audiences)
    router.add(f"{BASE}/audiences/{{id}}", ["GET"], get_audience)
    router.add(f"{BASE}/audiences/{{id}}", ["DELETE"], delete_audience)
    router.add(f"{BASE}/config/mergePolicies", ["GET"], merge_policies)
    router.add(f"{BASE}/config/mergePolicies/{{id}}", ["GET"], get_merge_policy)
    router.add(f"{BASE}/export/jobs", ["POST"], create_export)
    router.add(f"{BASE}/export/jobs", ["GET"], list_exports)
    router.add(f"{BASE}/export/jobs/{{id}}", ["GET"],
               job_getter("export_job", lambda call, job_id: ExportJobs(call.scope, platform).job(job_id)))
