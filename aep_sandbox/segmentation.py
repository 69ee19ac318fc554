"""Segmentation (``/data/core/ups``): segment definitions and segment jobs over the profile store.

reference/aep_api.md §9. A job evaluates each segment's PQL over the merged profiles and keeps its
members for destination activation; once it has ended, the Query Accelerated Store takes its
snapshot (query/accelerated.py). The Audiences API, merge policies and export jobs are in
audiences.py. Not modelled yet: streaming and edge evaluation.
"""

import logging
import uuid
from collections.abc import Callable

import pyarrow.parquet as pq

from . import errors
from .http import Call, Router
from .pql import PQLError, compile_pql
from .profile_store import ProfileStore, members_path
from .store import Scope, now_ms

log = logging.getLogger("aep_sandbox")
BASE = "/data/core/ups"
SEGMENT, JOB = "segment", "segment_job"


class SegmentationBackend:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform

    def _validate(self, body: dict) -> str:
        expression = body.get("expression") or {}
        if expression.get("type") != "PQL" or expression.get("format") != "pql/text":
            raise errors.SegmentBadRequest("expression must be {'type': 'PQL', 'format': 'pql/text', 'value': ...}.")
        try:
            compile_pql(expression.get("value") or "")
        except PQLError as exc:
            raise errors.SegmentBadRequest(f"The PQL expression is not valid: {exc}") from None
        return expression["value"]

    def create(self, body: dict) -> dict:
        if not body.get("name"):
            raise errors.SegmentBadRequest("'name' is required.")
        if self.scope.list(SEGMENT, name=body["name"]):
            raise errors.SegmentBadRequest(f"A segment named {body['name']!r} already exists; names are unique.")
        self._validate(body)
        now = now_ms()
        seg = {"id": str(uuid.uuid4()), "name": body["name"], "description": body.get("description", ""),
               "profileInstanceId": body.get("profileInstanceId", "ups"), "expression": body["expression"],
               "schema": body.get("schema") or {"name": "_xdm.context.profile"},
               "evaluationInfo": body.get("evaluationInfo") or {"batch": {"enabled": True},
                                                                "continuous": {"enabled": False},
                                                                "synchronous": {"enabled": False}},
               "ttlInDays": body.get("ttlInDays", 30), "payloadSchema": body.get("payloadSchema", "string"),
               "imsOrgId": self.scope.org,
               "sandbox": {"sandboxId": self.scope.sandbox, "sandboxName": self.scope.sandbox,
                           "type": "production" if self.scope.sandbox == "prod" else "development",
                           "default": self.scope.sandbox == "prod"},
               "dataGovernancePolicy": {"excludeOptOut": True}, "creationTime": now,
               "updateEpoch": now // 1000, "updateTime": now}
        return self.scope.put(SEGMENT, seg["id"], seg, name=seg["name"])

    def get(self, seg_id: str) -> dict:
        seg = self.scope.get(SEGMENT, seg_id)
        if seg is None:
            raise errors.SegmentNotFound(f"Segment definition {seg_id!r} was not found.")
        return seg

    def segments(self) -> list[dict]:
        return self.scope.list(SEGMENT)

    def label(self, seg_id: str, labels: list) -> dict:
        return self.scope.update(SEGMENT, seg_id, lambda s: {**s, "labels": labels})

    def delete(self, seg_id: str) -> None:
        self.get(seg_id)
        self.scope.delete(SEGMENT, seg_id)

    def job(self, job_id: str) -> dict:
        job = self.scope.get(JOB, job_id)
        if job is None:
            raise errors.SegmentNotFound(f"Segment job {job_id!r} was not found.")
        return job

    def patch(self, seg_id: str, body: dict) -> dict:
        self.get(seg_id)
        if "expression" in body:
            self._validate(body)
        now = now_ms()
        allowed = {k: v for k, v in body.items() if k in ("name", "description", "expression", "ttlInDays")}
        return self.scope.update(SEGMENT, seg_id, lambda s: {**s, **allowed, "updateTime": now,
                                                             "updateEpoch": now // 1000})

    def create_job(self, body: list) -> dict:
        if not isinstance(body, list) or not body:
            raise errors.SegmentBadRequest('A segment job body is a list like [{"segmentId": "..."}].')
        if not all(isinstance(item, dict) and isinstance(item.get("segmentId"), str) for item in body):
            raise errors.SegmentBadRequest('Each item of a segment job body is {"segmentId": "<id>"}.')
        ids = [item["segmentId"] for item in body]
        for seg_id in ids:
            self.get(seg_id)
        now = now_ms()
        job = {"id": str(uuid.uuid4()), "imsOrgId": self.scope.org, "status": "NEW",
               "segments": [self._job_segment(s) for s in ids], "creationTime": now, "updateTime": now,
               "metrics": {"totalTime": {"startTimeInMs": now}, "profileSegmentationTime": {}}, "errors": []}
        self.scope.put(JOB, job["id"], job)
        self.platform.lifecycles.begin("segment_job", job["id"], lambda: self.run_job(job["id"]))
        return job

    def _job_segment(self, seg_id: str) -> dict:
        """A job's entry for one segment, as AEP's job lists it: the id and the definition it evaluates."""
        seg = self.get(seg_id)
        return {"segmentId": seg_id, "segment": {"id": seg_id, "expression": seg["expression"],
                                                  "mergePolicy": {"id": "default", "version": 1},
                                                  "mergePolicyId": "default"}}

    def members_path(self, seg_id: str):
        return members_path(self.platform, self.scope, seg_id)

    def run_job(self, job_id: str) -> None:
        start = now_ms()
        job = self.scope.update(JOB, job_id, lambda j: {**j, "status": "PROCESSING", "updateTime": start})
        store = ProfileStore(self.scope, self.platform)
        # The previous job's snapshot reads the members this job is about to replace.
        self.platform.wait_for_segment_job_listeners(self.scope)
        counts, by_status = {}, {}
        try:
            compiled = {item["segmentId"]: compile_pql(self.get(item["segmentId"])["expression"]["value"])
                        for item in job["segments"]}
            paths = sorted({p for c in compiled.values() for p in c.paths})
            con = store.connect()
            try:  # merge the profiles once for every segment of the job, as a batch segment job does
                con.execute(f"CREATE TEMP TABLE merged AS {store.attributes_sql(paths)}")
                # fetchall, not fetchone: DuckDB keeps a connection busy until its result is read to the end
                total = con.execute("SELECT count(*) FROM merged").fetchall()[0][0]
                for seg_id, c in compiled.items():
                    cols = "".join(f', "p{paths.index(p)}" AS "p{i}"' for i, p in enumerate(c.paths))
                    table = con.sql(f"SELECT identity FROM (SELECT identity{cols} FROM merged) WHERE {c.sql} "
                                    "ORDER BY identity").to_arrow_table()
                    path = self.members_path(seg_id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp")
                    pq.write_table(table, tmp)
                    tmp.replace(path)
                    counts[seg_id] = table.num_rows
                    by_status[seg_id] = {"realized": table.num_rows, "exited": 0}
            finally:
                con.close()
        except Exception as exc:  # the job records the failure, as AEP's does
            failure = [{"code": "0100000003", "msg": str(exc)}]
            self.scope.update(JOB, job_id, lambda j: {**j, "status": "FAILED", "updateTime": now_ms(),
                                                      "errors": failure})
            raise
        end = now_ms()
        metrics = {"totalTime": {"startTimeInMs": start, "endTimeInMs": end, "totalTimeInMs": end - start},
                   "profileSegmentationTime": {"startTimeInMs": start, "endTimeInMs": end,
                                               "totalTimeInMs": end - start},
                   "totalProfiles": total, "segmentedProfileCounter": counts,
                   "segmentedProfileByStatusCounter": by_status}
        self.scope.update(JOB, job_id, lambda j: {**j, "status": "SUCCEEDED", "updateTime": end, "metrics": metrics})
        # The dashboards' snapshot follows the job, as AEP's reporting does; a query of qsaccel waits for it.
        self.platform.segment_job_ended(self.scope)


def job_getter(lifecycle: str, find: Callable[[Call, str], dict]):
    """A GET handler for one job by its path id, found by its backend (``find``); the read counts towards the
    job's paced lifecycle."""

    def handler(call: Call):
        applied = call.wait_for_change(lifecycle, call.path["id"])
        job = find(call, call.path["id"])
        call.platform.lifecycles.observed(lifecycle, call.path["id"])
        return 200, job, applied

    return handler


def register(router: Router) -> None:
    platform = router.platform

    def backend(call: Call) -> SegmentationBackend:
        return SegmentationBackend(call.scope, platform)

    def create(call: Call):
        return 200, backend(call).create(call.json())

    def list_segments(call: Call):
        items = backend(call).segments()
        name = call.params.get("name")
        if name:
            items = [s for s in items if s["name"] == name]
        limit, start = call.int_param("limit", 100), call.int_param("start", 0)
        page = items[start:start + limit]
        return 200, {"segments": page, "page": {"totalCount": len(items), "totalPages": 1, "pageSize": len(page),
                                                "limit": limit}, "link": {}}

    def get(call: Call):
        return 200, backend(call).get(call.path["id"])

    def patch(call: Call):
        return 200, backend(call).patch(call.path["id"], call.json())

    def delete(call: Call):
        backend(call).delete(call.path["id"])
        return 204, None

    def create_job(call: Call):
        return 200, backend(call).create_job(call.json(list))

    router.add(f"{BASE}/segment/definitions", ["POST"], create)
    router.add(f"{BASE}/segment/definitions", ["GET"], list_segments)
    router.add(f"{BASE}/segment/definitions/{{id}}", ["GET"], get)
    router.add(f"{BASE}/segment/definitions/{{id}}", ["PATCH"], patch)
    router.add(f"{BASE}/segment/definitions/{{id}}", ["DELETE"], delete)
    router.add(f"{BASE}/segment/jobs", ["POST"], create_job)
    router.add(f"{BASE}/segment/jobs/{{id}}", ["GET"],
               job_getter("segment_job", lambda call, job_id: backend(call).job(job_id)))
