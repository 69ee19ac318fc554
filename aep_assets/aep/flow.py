"""Flow Service and ad hoc activation: dataset export and audience activation to files.

reference/aep_api.md §8.3 and §10. Every connection and flow is looked up by name before it is
created, so a re-run reuses what the last run made.
"""

import hashlib
import time
from dataclasses import dataclass, field

from .errors import FlowRunFailed, UnexpectedState
from .polling import poll, prefer_wait
from .session import AEPSession

BASE = "/data/foundation/flowservice"
ADHOC = "/data/core/activation/disflowprovider/adhocrun"
DATALAKE_SOURCE_SPEC = "activation-datalake"
PROFILE_STORE_SPEC = "Profile Store"


@dataclass(frozen=True)
class ExportTarget:
    """Where exported files land: AEP's Data Landing Zone, or an S3 bucket AEP writes to."""

    kind: str  # "dlz" | "s3"
    path: str
    bucket: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    @property
    def connection_spec(self) -> str:
        return "Data Landing Zone" if self.kind == "dlz" else "Amazon S3"

    @property
    def dataset_flow_spec(self) -> str:
        return "Data Landing Zone" if self.kind == "dlz" else "Amazon S3"

    @property
    def audience_flow_spec(self) -> str:
        return "Data Landing Zone" if self.kind == "dlz" else "Amazon S3 (audiences)"


class FlowService:
    def __init__(self, session: AEPSession) -> None:
        self.session = session
        self._specs: dict[str, dict] = {}

    def spec_id(self, collection: str, name: str) -> str:
        key = f"{collection}:{name}"
        if key not in self._specs:
            items = self.session.json("GET", f"{BASE}/{collection}", params={"property": f"name=={name}"})["items"]
            if not items:
                raise UnexpectedState(f"AEP lists no {collection} named {name!r}.")
            self._specs[key] = items[0]
        return self._specs[key]["id"]

    def find(self, collection: str, name: str) -> dict | None:
        items = self.session.json("GET", f"{BASE}/{collection}", params={"property": f"name=={name}"})["items"]
        return items[0] if items else None

    def ensure(self, collection: str, body: dict) -> tuple[dict, bool]:
        found = self.find(collection, body["name"])
        if found:
            return found, False
        created = self.session.json("POST", f"{BASE}/{collection}", json=body)
        return self.session.json("GET", f"{BASE}/{collection}/{created['id']}")["items"][0], True

    def list_all(self, collection: str) -> list[dict]:
        return self.session.json("GET", f"{BASE}/{collection}")["items"]

    def delete(self, collection: str, obj_id: str) -> None:
        self.session.request("DELETE", f"{BASE}/{collection}/{obj_id}")

    def delete_dataset_export_flows(self, name: str, keep_dataset_id: str) -> list[str]:
        """Delete this pipeline's export flows (and source connections) for datasets other than the kept one."""
        deleted = []
        for flow in self.list_all("flows"):
            if flow["name"].startswith(f"{name} ") and not flow["name"].endswith(keep_dataset_id):
                self.delete("flows", flow["id"])
                for sid in flow.get("sourceConnectionIds") or []:
                    self.delete("sourceConnections", sid)
                deleted.append(flow["name"])
        return deleted

    def _target(self, name: str, target: ExportTarget, extra_params: dict) -> dict:
        spec = {"id": self.spec_id("connectionSpecs", target.connection_spec), "version": "1.0"}
        auth = None
        if target.kind == "s3":
            auth = {"specName": "Access Key", "params": {"s3AccessKey": target.access_key,
                                                         "s3SecretKey": target.secret_key}}
        base, _ = self.ensure("connections", {"name": f"{name} base", "auth": auth, "connectionSpec": spec})
        params = {"mode": "Server-to-server", "path": target.path, **extra_params}
        if target.bucket:
            params["bucketName"] = target.bucket
        conn, _ = self.ensure("targetConnections", {"name": f"{name} target", "baseConnectionId": base["id"],
                                                    "params": params, "connectionSpec": spec})
        return conn

    def ensure_dataset_export_flow(self, name: str, dataset_id: str, target: ExportTarget) -> tuple[dict, bool]:
        """A flow exporting ``dataset_id`` as gzip Parquet; ad hoc only (its schedule starts a year out)."""
        src, _ = self.ensure("sourceConnections", {
            "name": f"{name} source {dataset_id}", "data": {"format": "parquet"},
            "connectionSpec": {"id": self.spec_id("connectionSpecs", DATALAKE_SOURCE_SPEC), "version": "1.0"},
            "params": {"datasets": [{"dataSetId": dataset_id}]}})
        tgt = self._target(name, target, {"compression": "GZIP", "datasetFileType": "PARQUET"})
        return self.ensure("flows", {
            "name": f"{name} {dataset_id}",
            "flowSpec": {"id": self.spec_id("flowSpecs", target.dataset_flow_spec), "version": "1.0"},
            "sourceConnectionIds": [src["id"]], "targetConnectionIds": [tgt["id"]], "transformations": [],
            "scheduleParams": {"interval": 1, "timeUnit": "day", "startTime": int(time.time()) + 365 * 86400}})

    def ensure_audience_flow(self, name: str, segments: list[dict], target: ExportTarget,
                             attributes: list[str]) -> tuple[dict, bool]:
        """A file destination flow activating ``segments`` ({id, name}) with ``attributes`` as columns."""
        src, _ = self.ensure("sourceConnections", {
            "name": f"{name} profile source", "data": {"format": "CSV", "schema": None}, "params": {},
            "connectionSpec": {"id": self.spec_id("connectionSpecs", PROFILE_STORE_SPEC), "version": "1.0"}})
        tgt = self._target(name, target, {"fileType": "CSV", "compression": "NONE"})
        selectors = [{"type": "PLATFORM_SEGMENT", "value": {
            "id": s["id"], "name": s["name"],
            "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%",
            "exportMode": "DAILY_FULL_EXPORT", "schedule": {"frequency": "ONCE"}}} for s in segments]
        profile = [{"type": "JSON_PATH", "value": {"operator": "EXISTS", "path": p}} for p in attributes]
        ids = ",".join(sorted(s["id"] for s in segments))
        return self.ensure("flows", {
            "name": f"{name} {hashlib.sha1(ids.encode()).hexdigest()[:10]}",
            "flowSpec": {"id": self.spec_id("flowSpecs", target.audience_flow_spec), "version": "1.0"},
            "sourceConnectionIds": [src["id"]], "targetConnectionIds": [tgt["id"]],
            "transformations": [{"name": "GeneralTransform", "params": {
                "segmentSelectors": {"selectors": selectors}, "profileSelectors": {"selectors": profile}}}]})

    def export_dataset_now(self, flow_id: str, dataset_id: str) -> str:
        """Trigger an ad hoc dataset export; returns the run id."""
        body = {"activationInfo": {"destinations": [{"flowId": flow_id, "datasets": [{"id": dataset_id}]}]}}
        res = self.session.json("POST", ADHOC, json=body,
                                headers={"Accept": "application/vnd.adobe.adhoc.dataset.activation+json; version=1"})
        return res["destinations"][0]["datasets"][0]["statusURL"].rstrip("/").rsplit("/", 1)[-1]

    def activate_audiences_now(self, flow_id: str, segment_ids: list[str]) -> dict[str, str]:
        """Trigger an ad hoc audience activation; returns {segment id: run id}."""
        res = self.session.json("POST", ADHOC, json={"activationInfo": {flow_id: segment_ids}},
                                headers={"Accept": "application/vnd.adobe.adhoc.activation+json; version=2"})
        return {o["segment"]: o["statusURL"].rstrip("/").rsplit("/", 1)[-1] for o in res["order"]}

    def patch(self, collection: str, obj_id: str, ops: list[dict], etag: str | None = None) -> dict:
        """JSON Patch guarded by If-Match: the etag given, or the object's current one. Returns the new
        {id, etag}; a stale etag raises PreconditionFailed."""
        if etag is None:
            etag = self.session.json("GET", f"{BASE}/{collection}/{obj_id}")["items"][0]["etag"]
        return self.session.json("PATCH", f"{BASE}/{collection}/{obj_id}", json=ops, headers={"If-Match": etag})

    def set_flow_state(self, flow_id: str, enabled: bool) -> dict:
        return self.session.json("POST", f"{BASE}/flows/{flow_id}/action",
                                 params={"op": "enable" if enabled else "disable"})

    def get_run(self, run_id: str, wait_s: float = 0) -> dict:
        return self.session.json("GET", f"{BASE}/runs/{run_id}", headers=prefer_wait(wait_s))["items"][0]

    def wait_for_run(self, run_id: str, timeout_s: float = 1800) -> dict:
        def done(run: dict) -> bool:
            status = ((run.get("metrics") or {}).get("statusSummary") or {}).get("status")
            match status:
                case "success":
                    return True
                case "failed" | "cancelled":
                    raise FlowRunFailed("Flow run", run_id, status, run["metrics"]["statusSummary"].get("errors"))
                case None | "inProgress" | "pending" | "queued":
                    return False
                case other:
                    raise UnexpectedState(f"Flow run {run_id} is in state {other!r}.")

        return poll(lambda wait_s: self.get_run(run_id, wait_s), done, what=f"Flow run {run_id}", timeout_s=timeout_s)
