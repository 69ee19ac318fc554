"""Flow Service (``/data/foundation/flowservice``) and ad hoc activation: dataset and audience exports.

reference/aep_api.md §8 and §10. Supported: dataset export flows and audience export flows to the
Data Landing Zone and to Amazon S3, run ad hoc; runs carry metrics only once complete. Flows take
JSON Patch guarded by ``If-Match`` (each change makes a new etag) and ``action?op=enable|disable``;
a disabled flow does not run. Not modelled yet: scheduled runs, source (ingest) flows, and the rule
that a connection in use by a flow cannot be deleted.
"""

import io
import re
import secrets
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import errors, filters, names, patching
from .catalog import CatalogBackend
from .datalake import scan_sql
from .destinations import Destination, S3Bucket
from .http import Call, Router
from .names import quote_ident, quote_literal
from .profile_store import ProfileStore
from .schema_registry import SchemaRegistryBackend
from .segmentation import SegmentationBackend
from .store import Scope, now_ms

EXPORT_ROW_GROUP = 32_768
# A dataset export writes up to this many part files at once, as AEP's Spark job writes several: pyarrow compresses
# one file on one thread. gzip at level 1, not zlib's default 6: on the demo's 1.4 million training rows one file
# took 3.65 s against 7.76 s, 5 % larger (DuckDB, which has no gzip level, took 4.88 s on two threads).
EXPORT_WRITERS, EXPORT_GZIP_LEVEL = 2, 1

BASE = "/data/foundation/flowservice"
ADHOC = "/data/core/activation/disflowprovider/adhocrun"

DLZ_DESTINATION = "10440537-2a7b-4583-ac39-ed38d4b848e8"
S3_DESTINATION = "4fce964d-3f37-408f-9778-e597338a21ee"
DATALAKE_SOURCE = "23598e46-f560-407b-88d5-ea6207e49db0"
PROFILE_STORE_SOURCE = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"

CONNECTION_SPECS = [
    {"id": DATALAKE_SOURCE, "name": "activation-datalake", "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a"},
    {"id": PROFILE_STORE_SOURCE, "name": "Profile Store", "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a"},
    {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "name": "datalake",
     "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a"},
    {"id": DLZ_DESTINATION, "name": "Data Landing Zone", "providerId": "14e34fac-d307-11e9-bb65-2a2ae2dbcce4"},
    {"id": S3_DESTINATION, "name": "Amazon S3", "providerId": "14e34fac-d307-11e9-bb65-2a2ae2dbcce4"},
    {"id": "26f526f2-58f4-4712-961d-e41bf1ccc0e8", "name": "Data Landing Zone Source",
     "providerId": "0ed90a81-07f4-4586-8190-b40eccef1c5a"},
]
DATASET_EXPORT_SPECS = {"cd2fc47e-e838-4f38-a581-8fff2f99b63a": DLZ_DESTINATION,
                        "269ba276-16fc-47db-92b0-c1049a3c131f": S3_DESTINATION}
AUDIENCE_EXPORT_SPECS = {"1a0514a6-33d4-4c7f-aff8-594799c47549": S3_DESTINATION}
FLOW_SPECS = [
    {"id": "cd2fc47e-e838-4f38-a581-8fff2f99b63a", "name": "Data Landing Zone",
     "sourceConnectionSpecIds": [DATALAKE_SOURCE, PROFILE_STORE_SOURCE], "targetConnectionSpecIds": [DLZ_DESTINATION]},
    {"id": "269ba276-16fc-47db-92b0-c1049a3c131f", "name": "Amazon S3",
     "sourceConnectionSpecIds": [DATALAKE_SOURCE], "targetConnectionSpecIds": [S3_DESTINATION]},
    {"id": "1a0514a6-33d4-4c7f-aff8-594799c47549", "name": "Amazon S3 (audiences)",
     "sourceConnectionSpecIds": [PROFILE_STORE_SOURCE], "targetConnectionSpecIds": [S3_DESTINATION]},
    {"id": "9753525b-82c7-4dce-8a9b-5ccfce2b9876", "name": "CloudStorageToAEP",
     "sourceConnectionSpecIds": ["26f526f2-58f4-4712-961d-e41bf1ccc0e8"],
     "targetConnectionSpecIds": ["c604ff05-7f1a-43c0-8e18-33bf874cb11c"]},
]
# Flow Service's collections, each kept in the store under its own kind.
COLLECTIONS = {"connections": "fs_connection", "sourceConnections": "fs_source", "targetConnections": "fs_target",
         "flows": "fs_flow"}
RUN = "fs_run"
DEFAULT_FILENAME = "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%"


def _etag() -> str:
    return f'"{uuid.uuid4().hex[:8]}-0000-0200-0000-{secrets.token_hex(6)}"'


class FlowServiceBackend:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform
        self.registry = SchemaRegistryBackend(scope, platform.credentials.tenant_id)
        self.catalog = CatalogBackend(scope, self.registry)

    def create(self, collection: str, body: dict) -> dict:
        if not body.get("name"):
            raise errors.FlowBadRequest(f"'name' is required to create {collection}.")
        spec_key = "flowSpec" if collection == "flows" else "connectionSpec"
        spec_id = (body.get(spec_key) or {}).get("id")
        known = [s["id"] for s in (FLOW_SPECS if collection == "flows" else CONNECTION_SPECS)]
        if spec_id not in known:
            raise errors.FlowBadRequest(f"{spec_key}.id {spec_id!r} is not a known spec; list them with "
                                        f"GET {BASE}/{'flowSpecs' if collection == 'flows' else 'connectionSpecs'}.")
        if collection == "targetConnections" and body.get("baseConnectionId"):
            self.get("connections", body["baseConnectionId"])
        if collection == "targetConnections":
            names.relative_path((body.get("params") or {}).get("path") or "", "params.path")
        for selector in _selectors(body) if collection == "flows" else []:
            names.file_name_template((selector.get("value") or {}).get("filenameTemplate") or DEFAULT_FILENAME)
        if collection == "sourceConnections" and spec_id == DATALAKE_SOURCE:
            for item in (body.get("params") or {}).get("datasets") or []:
                self.catalog.dataset(item.get("dataSetId", ""))
        if collection == "flows":
            for sid in body.get("sourceConnectionIds") or []:
                self.get("sourceConnections", sid)
            for tid in body.get("targetConnectionIds") or []:
                self.get("targetConnections", tid)
            if not body.get("sourceConnectionIds") or not body.get("targetConnectionIds"):
                raise errors.FlowBadRequest("A flow needs sourceConnectionIds and targetConnectionIds.")
        now = now_ms()
        obj = {**body, "id": str(uuid.uuid4()), "etag": _etag(), "createdAt": now, "updatedAt": now,
               "createdBy": "aep-sandbox", "createdClient": "aep-sandbox", "state": "enabled"}
        self.scope.put(COLLECTIONS[collection], obj["id"], obj, name=obj["name"])
        return obj

    def get(self, collection: str, obj_id: str) -> dict:
        obj = self.scope.get(COLLECTIONS[collection], obj_id)
        if obj is None:
            raise errors.FlowNotFound(f"No {collection[:-1]} with id {obj_id!r}.")
        return obj

    def objects(self, collection: str, clauses: list | None = None) -> list[dict]:
        return [o for o in self.scope.list(COLLECTIONS[collection]) if filters.matches(o, clauses or [])]

    def delete(self, collection: str, obj_id: str) -> None:
        self.get(collection, obj_id)
        self.scope.delete(COLLECTIONS[collection], obj_id)

    def runs(self, clauses: list) -> list[dict]:
        return [r for r in self.scope.list(RUN) if filters.matches(r, clauses)]

    def run(self, run_id: str) -> dict:
        run = self.scope.get(RUN, run_id)
        if run is None:
            raise errors.FlowNotFound(f"No run with id {run_id!r}.")
        return run

    def audience_activations(self) -> list[tuple[dict, str, list[str]]]:
        """Each flow that activates audiences: the flow, its destination's name, and the segment ids it sends."""
        spec_names = {s["id"]: s["name"] for s in CONNECTION_SPECS}
        activations = []
        for flow in self.objects("flows"):
            target = AUDIENCE_EXPORT_SPECS.get(flow.get("flowSpec", {}).get("id"))
            if target is not None:
                segment_ids = [seg_id for sel in _selectors(flow) if (seg_id := (sel.get("value") or {}).get("id"))]
                activations.append((flow, spec_names.get(target, target), segment_ids))
        return activations

    def patch(self, collection: str, obj_id: str, if_match: str | None, ops) -> dict:
        """JSON Patch (``op`` in any case: aepp sends 'Replace') on top-level or nested fields."""
        obj = self.get(collection, obj_id)
        if not if_match:
            raise errors.FlowBadRequest("PATCH needs the If-Match header with the object's current etag.")
        if if_match != obj["etag"]:
            raise errors.FlowPreconditionFailed(f"If-Match {if_match} is not the current etag {obj['etag']}; "
                                                "GET the object again and retry with its etag.")
        return self._touch(collection, patching.apply(obj, ops, allow=_patchable, error=errors.FlowBadRequest))

    def set_state(self, obj_id: str, op: str) -> dict:
        if op not in ("enable", "disable"):
            raise errors.FlowBadRequest(f"op={op!r} is not 'enable' or 'disable'.")
        obj = self.get("flows", obj_id)
        obj["state"] = f"{op}d"
        return self._touch("flows", obj)

    def _enabled(self, flow_id: str) -> dict:
        flow = self.get("flows", flow_id)
        if flow.get("state", "enabled") != "enabled":
            raise errors.FlowBadRequest(f"Flow {flow_id} is {flow['state']}; enable it with "
                                        f"POST {BASE}/flows/{flow_id}/action?op=enable before running it.")
        return flow

    def _touch(self, collection: str, obj: dict) -> dict:
        obj.update(etag=_etag(), updatedAt=now_ms())
        self.scope.put(COLLECTIONS[collection], obj["id"], obj, name=obj["name"])
        return obj

    # runs ----------------------------------------------------------------------------------
    def _destination(self, flow: dict) -> tuple[Destination, dict]:
        target = self.get("targetConnections", flow["targetConnectionIds"][0])
        params = {k: v for k, v in (target.get("params") or {}).items()}
        spec = target["connectionSpec"]["id"]
        if spec == DLZ_DESTINATION:
            return self.platform.landing_zone.writer("dlz-destination"), params
        base = self.get("connections", target["baseConnectionId"]) if target.get("baseConnectionId") else {}
        auth = (base.get("auth") or {}).get("params") or {}
        bucket = params.get("bucketName")
        if not bucket:
            raise errors.FlowBadRequest("An Amazon S3 target connection needs params.bucketName.")
        if not (auth.get("s3AccessKey") and auth.get("s3SecretKey")):
            # Without them boto3 would sign with the host's own keys, into a bucket the caller chose.
            raise errors.FlowBadRequest("An Amazon S3 destination needs its base connection's auth.params.s3AccessKey "
                                        "and s3SecretKey; the sandbox never writes with its own credentials.")
        return S3Bucket(bucket, auth.get("s3AccessKey"), auth.get("s3SecretKey"),
                        self.platform.config.s3_endpoint_url), params

    def _new_run(self, flow: dict) -> dict:
        now = now_ms()
        run = {"id": str(uuid.uuid4()), "flowId": flow["id"], "flowSpec": flow["flowSpec"], "createdAt": now,
               "updatedAt": now, "createdBy": "aep-sandbox", "etag": _etag(), "activities": [],
               "metrics": {"durationSummary": {"startedAtUTC": now}, "statusSummary": {"status": "inProgress"}}}
        return self.scope.put(RUN, run["id"], run, name=flow["id"])

    def adhoc_datasets(self, body: dict, base_url: str) -> dict:
        out = []
        for dest in (body.get("activationInfo") or {}).get("destinations") or []:
            flow = self._enabled(dest.get("flowId", ""))
            if flow["flowSpec"]["id"] not in DATASET_EXPORT_SPECS:
                raise errors.FlowBadRequest(f"Adhoc run can not be executed for Flow spec={flow['flowSpec']['id']}")
            allowed = {d["dataSetId"] for sid in flow["sourceConnectionIds"]
                       for d in (self.get("sourceConnections", sid).get("params") or {}).get("datasets") or []}
            datasets = []
            for item in dest.get("datasets") or []:
                if item.get("id") not in allowed:
                    raise errors.FlowBadRequest(f"Dataset {item.get('id')} is not part of flow {flow['id']}.")
                run = self._new_run(flow)
                self.platform.lifecycles.begin(
                    "flow_run", run["id"], lambda r=run["id"], f=flow, d=item["id"]: self._export_dataset(r, f, d))
                datasets.append({"id": item["id"], "statusURL": f"{base_url}{BASE}/runs/{run['id']}"})
            out.append({"flowId": flow["id"], "datasets": datasets})
        if not out:
            raise errors.FlowBadRequest("activationInfo.destinations must name at least one flow.")
        return {"destinations": out}

    def adhoc_audiences(self, body: dict, base_url: str) -> dict:
        info = body.get("activationInfo") or {}
        if not info:
            raise errors.FlowBadRequest("activationInfo must map a destination flow id to segment ids.")
        order = []
        for flow_id, segment_ids in info.items():
            flow = self._enabled(flow_id)
            selected = {s["value"]["id"]: s["value"] for s in _selectors(flow)}
            for seg_id in segment_ids:
                if seg_id not in selected:
                    raise errors.FlowBadRequest(f"Segments {seg_id} are not part of this dataflow or out of "
                                                "schedule range!")
                run = self._new_run(flow)
                self.platform.lifecycles.begin("flow_run", run["id"], lambda r=run["id"], f=flow,
                                               s=selected[seg_id]: self._export_audience(r, f, s))
                order.append({"segment": seg_id, "order": run["id"],
                              "statusURL": f"{base_url}{BASE}/runs/{run['id']}"})
        return {"order": order}

    def _export_dataset(self, run_id: str, flow: dict, ds_id: str) -> None:
        def job(run: dict) -> dict:
            dest, params = self._destination(flow)
            files = self.catalog.active_files(ds_id, self.platform.lake)
            stamp = datetime.fromtimestamp(run["metrics"]["durationSummary"]["startedAtUTC"] / 1000, UTC)
            folder = "/".join(p for p in [names.relative_path(params.get("path") or "", "params.path"), ds_id,
                                          f"exportTime={stamp:%Y%m%d%H%M}"] if p)
            gzip = str(params.get("compression", "NONE")).upper() == "GZIP"
            fmt = str(params.get("datasetFileType", "PARQUET")).upper()
            if fmt != "PARQUET":
                raise RuntimeError(f"datasetFileType {fmt} is not supported by the sandbox yet; use PARQUET.")
            parts = _export_parts(files, gzip)
            for part in parts:
                name = f"part-{part.number:05d}-tid-{secrets.randbits(60)}-{uuid.uuid4()}-c000{'.gz' if gzip else ''}"
                dest.write(f"{folder}/{name}.parquet", part.data)
            rows, out_bytes, written = sum(p.rows for p in parts), sum(len(p.data) for p in parts), len(parts)
            return {"recordSummary": {"inputRecordCount": rows, "outputRecordCount": rows, "failedRecordCount": 0},
                    "sizeSummary": {"inputBytes": out_bytes, "outputBytes": out_bytes},
                    "fileSummary": {"inputFileCount": len(files), "outputFileCount": written}}

        self._complete(run_id, job)

    def _export_audience(self, run_id: str, flow: dict, selector: dict) -> None:
        def job(run: dict) -> dict:
            dest, params = self._destination(flow)
            seg_backend = SegmentationBackend(self.scope, self.platform)
            seg = seg_backend.get(selector["id"])
            members_path = seg_backend.members_path(seg["id"])
            if not members_path.exists():
                raise RuntimeError(f"Segment {seg['id']} has not been evaluated; run a segment job first.")
            attrs = [p["value"]["path"] for p in _profile_selectors(flow)]
            store = ProfileStore(self.scope, self.platform)
            con = store.connect()
            cols = ", ".join(["m.identity"] + [f"a.{quote_ident(f'p{i}')} AS {quote_ident(path)}"
                                               for i, path in enumerate(attrs)])
            table = con.sql(
                f"SELECT {cols} FROM read_parquet({quote_literal(str(members_path))}) m "
                f"LEFT JOIN ({store.attributes_sql(attrs)}) a USING (identity) ORDER BY m.identity").to_arrow_table()
            con.close()
            stamp = datetime.fromtimestamp(run["metrics"]["durationSummary"]["startedAtUTC"] / 1000, UTC)
            template = names.file_name_template(selector.get("filenameTemplate") or DEFAULT_FILENAME)
            name = names.file_name(_filename(template, flow["name"], seg, stamp))
            buf = io.BytesIO()
            pacsv.write_csv(table, buf)
            folder = names.relative_path(params.get("path") or "", "params.path")
            dest.write(f"{folder}/{name}.csv" if folder else f"{name}.csv", buf.getvalue())
            return {"recordSummary": {"inputRecordCount": table.num_rows, "outputRecordCount": table.num_rows,
                                      "failedRecordCount": 0},
                    "sizeSummary": {"inputBytes": buf.tell(), "outputBytes": buf.tell()},
                    "fileSummary": {"inputFileCount": 1, "outputFileCount": 1}}

        self._complete(run_id, job)

    def _complete(self, run_id: str, job) -> None:
        run = self.scope.get(RUN, run_id)
        try:
            metrics = job(run)
            status, errs = "success", []
        except Exception as exc:  # a run reports its failure in statusSummary, as AEP's do
            metrics, status = {}, "failed"
            errs = [{"code": "CONNECTOR-2001-500", "message": str(exc)}]
        done = now_ms()

        def change(body: dict) -> dict:
            body["metrics"] = {**metrics, "durationSummary": {
                "startedAtUTC": body["metrics"]["durationSummary"]["startedAtUTC"], "completedAtUTC": done},
                "statusSummary": {"status": status, "errors": errs}}
            body["updatedAt"] = done
            return body

        self.scope.update(RUN, run_id, change)


READ_ONLY = ("id", "etag", "createdAt", "updatedAt", "createdBy", "createdClient", "state", "flowSpec",
             "connectionSpec")


def _patchable(operation: patching.Operation, flow: dict) -> None:
    """Flow Service's rules: add, replace or remove, never on the fields the service itself keeps."""
    if operation.op not in ("add", "replace", "remove") or not operation.path:
        raise errors.FlowBadRequest(f"Patch operation {operation.op!r} on {'/'.join(operation.path)!r} is not add, "
                                    "replace or remove on a path.")
    if operation.path[0] in READ_ONLY:
        raise errors.FlowBadRequest(f"'{operation.path[0]}' cannot be patched; use action?op=enable|disable for "
                                    "'state'.")


def _masked(obj: dict) -> dict:
    """Connections come back with their secrets masked, as AEP returns them."""
    auth = obj.get("auth") or {}
    if not auth.get("params"):
        return {k: v for k, v in obj.items() if not (k == "auth" and v is None)}  # no auth: no auth object
    params = {k: ("***" if "secret" in k.lower() or "password" in k.lower() else v) for k, v in auth["params"].items()}
    return {**obj, "auth": {**auth, "params": params}}


def _selectors(flow: dict) -> list[dict]:
    for t in flow.get("transformations") or []:
        sel = ((t.get("params") or {}).get("segmentSelectors") or {}).get("selectors")
        if sel is not None:
            return sel
    return []


def _profile_selectors(flow: dict) -> list[dict]:
    for t in flow.get("transformations") or []:
        sel = ((t.get("params") or {}).get("profileSelectors") or {}).get("selectors")
        if sel is not None:
            return sel
    return []


def _filename(template: str, destination: str, seg: dict, stamp: datetime) -> str:
    """AEP's file name macros: %DESTINATION_NAME%, %SEGMENT_ID%, %SEGMENT_NAME%, %DATETIME(fmt)%."""
    java = {"YYYY": "%Y", "yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}

    def dt(m: re.Match) -> str:
        fmt = m.group(1)
        for k, v in java.items():
            fmt = fmt.replace(k, v)
        return stamp.strftime(fmt)

    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", destination).strip("_")
    out = template.replace("%DESTINATION_NAME%", safe).replace("%SEGMENT_ID%", seg["id"])
    out = out.replace("%SEGMENT_NAME%", re.sub(r"[^A-Za-z0-9_-]+", "_", seg["name"]).strip("_"))
    return re.sub(r"%DATETIME\(([^)]*)\)%", dt, out)


def register(router: Router) -> None:
    platform = router.platform

    def backend(call: Call) -> FlowServiceBackend:
        return FlowServiceBackend(call.scope, platform)

    def specs(items: list[dict]):
        def handler(call: Call):
            clauses = filters.parse(call.params.getlist("property"))
            return 200, {"items": [s for s in items if filters.matches(s, clauses)]}
        return handler

    def spec(items: list[dict]):
        def handler(call: Call):
            for s in items:
                if s["id"] == call.path["id"]:
                    return 200, {"items": [s]}
            raise errors.FlowNotFound(f"No spec with id {call.path['id']!r}.")
        return handler

    def creator(collection: str):
        def handler(call: Call):
            obj = backend(call).create(collection, call.json())
            return 201, {"id": obj["id"], "etag": obj["etag"]}
        return handler

    def lister(collection: str):
        def handler(call: Call):
            clauses = filters.parse(call.params.getlist("property"))
            items = [_masked(o) for o in backend(call).objects(collection, clauses)]
            return 200, {"items": items}
        return handler

    def getter(collection: str):
        def handler(call: Call):
            return 200, {"items": [_masked(backend(call).get(collection, call.path["id"]))]}
        return handler

    def deleter(collection: str):
        def handler(call: Call):
            backend(call).delete(collection, call.path["id"])
            return 204, None
        return handler

    def patcher(collection: str):
        def handler(call: Call):
            obj = backend(call).patch(collection, call.path["id"], call.headers.get("if-match"), call.json(list))
            return 200, {"id": obj["id"], "etag": obj["etag"]}
        return handler

    def flow_action(call: Call):
        obj = backend(call).set_state(call.path["id"], call.params.get("op", ""))
        return 202, {"id": obj["id"], "etag": obj["etag"]}

    def list_runs(call: Call):
        clauses = filters.parse(call.params.getlist("property"))
        items = backend(call).runs(clauses)
        for run in items:
            platform.lifecycles.observed("flow_run", run["id"])
        return 200, {"items": sorted(items, key=lambda r: r["createdAt"], reverse=True)}

    def get_run(call: Call):
        applied = call.wait_for_change("flow_run", call.path["id"])
        run = backend(call).run(call.path["id"])
        platform.lifecycles.observed("flow_run", run["id"])
        return 200, {"items": [run]}, applied

    def adhoc(call: Call):
        accept = call.headers.get("accept", "").replace(" ", "")
        if "adhoc.dataset.activation" in accept:
            return 200, backend(call).adhoc_datasets(call.json(), call.base_url)
        if "adhoc.activation+json" in accept and "version=2" in accept:
            return 200, backend(call).adhoc_audiences(call.json(), call.base_url)
        raise errors.FlowBadRequest("Set Accept to 'application/vnd.adobe.adhoc.dataset.activation+json; version=1' "
                                    "or 'application/vnd.adobe.adhoc.activation+json; version=2'.")

    router.add(f"{BASE}/connectionSpecs", ["GET"], specs(CONNECTION_SPECS))
    router.add(f"{BASE}/connectionSpecs/{{id}}", ["GET"], spec(CONNECTION_SPECS))
    router.add(f"{BASE}/flowSpecs", ["GET"], specs(FLOW_SPECS))
    router.add(f"{BASE}/flowSpecs/{{id}}", ["GET"], spec(FLOW_SPECS))
    for collection in COLLECTIONS:
        router.add(f"{BASE}/{collection}", ["POST"], creator(collection))
        router.add(f"{BASE}/{collection}", ["GET"], lister(collection))
        router.add(f"{BASE}/{collection}/{{id}}", ["GET"], getter(collection))
        router.add(f"{BASE}/{collection}/{{id}}", ["DELETE"], deleter(collection))
        router.add(f"{BASE}/{collection}/{{id}}", ["PATCH"], patcher(collection))
    router.add(f"{BASE}/flows/{{id}}/action", ["POST"], flow_action)
    router.add(f"{BASE}/runs", ["GET"], list_runs)
    router.add(f"{BASE}/runs/{{id}}", ["GET"], get_run)
    router.add(ADHOC, ["POST"], adhoc)


@dataclass(frozen=True)
class ExportPart:
    number: int
    rows: int
    data: bytes


def _export_parts(files: list, gzip: bool) -> list[ExportPart]:
    """A dataset's rows as Parquet part files, gzip-compressed or not: DuckDB reads the files, and the batches go
    round the EXPORT_WRITERS writers, each compressing on its own thread. Part 0 always exists (the schema, when
    there are no rows); a part that got no batch is not written."""
    if not files:
        return []
    compression = {"compression": "gzip", "compression_level": EXPORT_GZIP_LEVEL} if gzip else {"compression": "none"}
    with duckdb.connect() as con, ThreadPoolExecutor(EXPORT_WRITERS, thread_name_prefix="export-part") as pool:
        con.execute("SET TimeZone = 'UTC'")  # instants come out in UTC, whatever the machine's zone is called
        reader = con.sql(f"SELECT * FROM {scan_sql(files)}").to_arrow_reader(EXPORT_ROW_GROUP)
        sinks: list[tuple[io.BytesIO, pq.ParquetWriter]] = []
        pending: list[Future | None] = [None] * EXPORT_WRITERS
        rows = [0] * EXPORT_WRITERS
        for n, batch in enumerate(reader):
            part = n % EXPORT_WRITERS
            if part == len(sinks):
                buffer = io.BytesIO()
                sinks.append((buffer, pq.ParquetWriter(buffer, reader.schema, **compression)))
            if pending[part] is not None:
                pending[part].result()  # a writer takes its batches one at a time, in order
            pending[part] = pool.submit(sinks[part][1].write_batch, batch)
            rows[part] += batch.num_rows
        for future in pending:
            if future is not None:
                future.result()
        if not sinks:
            buffer = io.BytesIO()
            sinks.append((buffer, pq.ParquetWriter(buffer, reader.schema, **compression)))
        for _, writer in sinks:
            writer.close()
    return [ExportPart(n, rows[n], buffer.getvalue()) for n, (buffer, _) in enumerate(sinks)]
