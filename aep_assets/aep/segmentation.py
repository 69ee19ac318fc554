"""Segmentation: PQL segment definitions (get-or-create by name) and batch segment jobs."""

from .errors import SegmentJobFailed, UnexpectedState
from .polling import poll, prefer_wait
from .session import AEPSession

BASE = "/data/core/ups"


class Segmentation:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def find_segment(self, name: str) -> dict | None:
        start = 0
        while True:
            page = self.session.json("GET", f"{BASE}/segment/definitions", params={"limit": 100, "start": start})
            for seg in page.get("segments", []):
                if seg.get("name") == name:
                    return seg
            if len(page.get("segments", [])) < 100:
                return None
            start += 100

    def ensure_segment(self, name: str, pql: str, description: str = "") -> tuple[dict, str]:
        """Create the segment, or update its PQL if it changed. Returns (segment, created|updated|unchanged)."""
        expression = {"type": "PQL", "format": "pql/text", "value": pql}
        found = self.find_segment(name)
        if found is None:
            body = {"name": name, "description": description, "profileInstanceId": "ups", "expression": expression,
                    "schema": {"name": "_xdm.context.profile"}, "payloadSchema": "string", "ttlInDays": 30,
                    "evaluationInfo": {"batch": {"enabled": True}, "continuous": {"enabled": False},
                                       "synchronous": {"enabled": False}}}
            return self.session.json("POST", f"{BASE}/segment/definitions", json=body), "created"
        if found["expression"].get("value") == pql:
            return found, "unchanged"
        updated = self.session.json("PATCH", f"{BASE}/segment/definitions/{found['id']}",
                                    json={"expression": expression, "description": description})
        return updated, "updated"

    def create_job(self, segment_ids: list[str]) -> dict:
        return self.session.json("POST", f"{BASE}/segment/jobs", json=[{"segmentId": s} for s in segment_ids])

    def get_job(self, job_id: str, wait_s: float = 0) -> dict:
        return self.session.json("GET", f"{BASE}/segment/jobs/{job_id}", headers=prefer_wait(wait_s))

    def wait_for_job(self, job_id: str, timeout_s: float = 3600) -> dict:
        def done(job: dict) -> bool:
            match job["status"]:
                case "SUCCEEDED":
                    return True
                case "FAILED" | "CANCELLED":
                    raise SegmentJobFailed("Segment job", job_id, job["status"], job.get("errors"))
                case "NEW" | "QUEUED" | "PROCESSING" | "CANCELLING":
                    return False
                case other:
                    raise UnexpectedState(f"Segment job {job_id} is in state {other!r}.")

        return poll(lambda wait_s: self.get_job(job_id, wait_s), done, what=f"Segment job {job_id}",
                    timeout_s=timeout_s)

    def evaluate(self, segment_ids: list[str], timeout_s: float = 3600) -> dict:
        return self.wait_for_job(self.create_job(segment_ids)["id"], timeout_s=timeout_s)

    def audiences(self, name: str | None = None) -> list[dict]:
        """Audiences through the Audiences API (segment definitions among them), optionally by name."""
        params = {"limit": 100, **({"name": name} if name else {})}
        return self.session.json("GET", f"{BASE}/audiences", params=params)["children"]

    def default_merge_policy(self) -> dict:
        policies = self.session.json("GET", f"{BASE}/config/mergePolicies")["children"]
        return next(p for p in policies if p.get("default"))

    def export_members(self, segment_ids: list[str], dataset_id: str, fields: list[str],
                       timeout_s: float = 3600) -> dict:
        """An export job: the segments' members, with ``fields``, written into ``dataset_id`` as a new batch.
        Returns the finished job (``destination.batchId``, ``metrics.totalExportedProfileCounter``)."""
        policy = self.default_merge_policy()
        job = self.session.json("POST", f"{BASE}/export/jobs", json={
            "fields": ",".join(fields), "mergePolicy": {"id": policy["id"], "version": policy.get("version", 1)},
            "filter": {"segments": [{"segmentId": s, "segmentNs": "ups", "status": ["realized", "existing"]}
                                    for s in segment_ids], "emptyProfiles": False},
            "destination": {"datasetId": dataset_id, "segmentPerBatch": False},
            "schema": {"name": "_xdm.context.profile"}, "evaluationInfo": {"segmentation": True}})

        def done(j: dict) -> bool:
            if j["status"] == "SUCCEEDED":
                return True
            if j["status"] in ("FAILED", "CANCELLED"):
                raise SegmentJobFailed("Export job", str(job["id"]), j["status"], j.get("errors"))
            return False

        def fetch(wait_s: float) -> dict:
            return self.session.json("GET", f"{BASE}/export/jobs/{job['id']}", headers=prefer_wait(wait_s))

        return poll(fetch, done, what=f"Export job {job['id']}", timeout_s=timeout_s)
