"""Batch ingestion (``/data/foundation/import``): create, upload, complete, and process batches.

reference/aep_api.md §5. A completed batch is validated against its dataset's XDM schema in the
background; its rows become visible only if every file passes. ``replay.predecessors`` replaces
earlier batches when the new one succeeds. Large files arrive in chunks (``?action=INITIALIZE``,
``PATCH`` with ``Content-Range``, ``?action=COMPLETE``); ``ABORT`` drops a loading batch, and
``REVERT`` makes a successful batch's rows invisible (``inactive``). Not modelled yet: partial
ingestion (``partialIngestionPercentage``), the 138-batches-per-minute rate limit.
"""

import io
import json
import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from . import errors, names
from .catalog import CatalogBackend
from .http import MAX_FILE_BODY, Call, Router
from .schema_registry import SchemaRegistryBackend
from .store import Scope, now_ms
from .workers import this_worker
from .xdm import RecordError, conform, conforms_as_stored, validation_contract

BASE = "/data/foundation/import"
FORMATS = ("json", "parquet", "csv")
MAX_FILES_PER_BATCH = 1500


def read_file(data: bytes, fmt: str, multiline: bool) -> pa.Table:
    """Parse one uploaded file. JSON may be JSON Lines or one array (single-line, or flagged multi-line)."""
    if not data.strip():
        raise RecordError("106", "Dataset file is empty. Upload a file with at least one record.")
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    if fmt == "csv":
        return pacsv.read_csv(io.BytesIO(data))
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        if b"\n" in stripped.strip() and not multiline:
            raise RecordError("101", "The file holds a multi-line JSON array but the batch's inputFormat has "
                                     "isMultiLineJson=false; send JSON Lines or set isMultiLineJson=true.")
        try:
            rows = json.loads(data)
        except json.JSONDecodeError as exc:
            raise RecordError("101", f"The file is not valid JSON: {exc}.") from None
        return pa.Table.from_pylist(rows)
    try:
        return pajson.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        raise RecordError("101", f"The file is not valid JSON Lines: {exc}.") from None


class IngestionBackend:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform
        self.registry = SchemaRegistryBackend(scope, platform.credentials.tenant_id)
        self.catalog = CatalogBackend(scope, self.registry)

    def create_batch(self, body: dict, client: str = "API") -> dict:
        ds_id = body.get("datasetId")
        if not ds_id:
            raise errors.IngestionBadRequest("'datasetId' is required to create a batch.")
        try:
            self.catalog.dataset(ds_id)
        except errors.CatalogNotFound:
            raise errors.IngestionBadRequest(f"datasetId {ds_id!r} is not a dataset of this sandbox.") from None
        fmt = ((body.get("inputFormat") or {}).get("format") or "").lower()
        if fmt not in FORMATS:
            raise errors.IngestionBadRequest(f"inputFormat.format {fmt!r} is not supported; use one of {FORMATS}.")
        return self.catalog.new_batch(
            ds_id, input_format={"format": fmt, "isMultiLineJson": bool(body["inputFormat"].get("isMultiLineJson"))},
            client=client, replay=body.get("replay"), tags=body.get("tags"))

    def batch(self, batch_id: str) -> dict:
        b = self.catalog.find_batch(batch_id)
        if b is None:
            raise errors.IngestionNotFound(f"Batch {batch_id!r} was not found in this sandbox.")
        return b

    def upload(self, batch_id: str, ds_id: str, name: str, data: bytes) -> None:
        batch = self.batch(batch_id)
        if batch["status"] != "loading":
            raise errors.IngestionBadRequest(f"Batch {batch_id} is {batch['status']}; files can only be added "
                                             "while it is loading.")
        if batch["relatedObjects"][0]["id"] != ds_id:
            raise errors.IngestionBadRequest(f"Batch {batch_id} belongs to dataset "
                                             f"{batch['relatedObjects'][0]['id']}, not {ds_id}.")
        if name not in batch["files"] and len(batch["files"]) >= MAX_FILES_PER_BATCH:
            raise errors.IngestionBadRequest(f"A batch holds at most {MAX_FILES_PER_BATCH} files.")
        path = self.platform.lake.upload_path(self.scope.org, self.scope.sandbox, batch_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # a second PUT of the same name overwrites, as AEP does
        self.catalog.add_batch_file(batch_id, name)

    def act(self, batch_id: str, action: str) -> None:
        batch = self.batch(batch_id)
        action = action.upper()
        if action == "COMPLETE":
            if batch["status"] in ("staging", "processing", "success", "failed"):
                return  # COMPLETE is safe to retry
            if batch["status"] != "loading":
                raise errors.IngestionBadRequest(f"Batch {batch_id} is {batch['status']} and cannot be completed.")
            self._set(batch_id, status="staging", worker=this_worker())  # recovery.py ends it if we crash
            self.platform.lifecycles.begin("batch", batch_id, lambda: self.process(batch_id), lane="batches")
        elif action == "ABORT":
            if batch["status"] != "loading":
                raise errors.IngestionBadRequest(f"Batch {batch_id} is {batch['status']}; only a loading batch "
                                                 "can be aborted.")
            self._set(batch_id, status="aborted")
            self.platform.lake.delete_uploads(self.scope.org, self.scope.sandbox, batch_id)
        elif action == "REVERT":
            if batch["status"] != "success":
                raise errors.IngestionBadRequest(f"Batch {batch_id} is {batch['status']}; only a successful batch "
                                                 "can be reverted.")
            self._set(batch_id, status="inactive", reverted=now_ms())
            self.platform.lake.delete_batch(self.scope.org, self.scope.sandbox, batch["relatedObjects"][0]["id"],
                                            batch_id)
        else:
            raise errors.IngestionBadRequest(f"action={action} is not supported; use COMPLETE, ABORT or REVERT.")

    # Chunked uploads: each chunk is kept as {start}-{end} until the file is completed.
    def _chunk_dir(self, batch_id: str, name: str):
        return names.inside(self.platform.lake.upload_dir(self.scope.org, self.scope.sandbox, batch_id), ".chunks",
                            names.file_name(name))

    def initialize_file(self, batch_id: str, ds_id: str, name: str) -> None:
        folder = self._chunk_dir(batch_id, name)  # the name is checked before anything is touched
        self._require_loading(batch_id, ds_id)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()

    def upload_chunk(self, batch_id: str, ds_id: str, name: str, content_range: str | None, data: bytes) -> None:
        self._require_loading(batch_id, ds_id)
        folder = self._chunk_dir(batch_id, name)
        if not folder.is_dir():
            raise errors.IngestionBadRequest(f"File {name!r} was not initialized; POST ?action=INITIALIZE first.")
        match = re.fullmatch(r"bytes (\d+)-(\d+)(?:/(\d+|\*))?", (content_range or "").strip())
        if not match:
            raise errors.IngestionBadRequest(f"Content-Range {content_range!r} is not 'bytes start-end'.")
        start, end = int(match.group(1)), int(match.group(2))
        if end - start + 1 != len(data):
            raise errors.IngestionBadRequest(f"Content-Range {content_range!r} covers {end - start + 1} bytes but "
                                             f"the body has {len(data)}.")
        (folder / f"{start}-{end}").write_bytes(data)

    def complete_file(self, batch_id: str, ds_id: str, name: str) -> None:
        folder = self._chunk_dir(batch_id, name)
        if not folder.is_dir():
            raise errors.IngestionBadRequest(f"File {name!r} was not initialized; POST ?action=INITIALIZE first.")
        chunks = sorted((tuple(map(int, p.name.split("-"))), p) for p in folder.iterdir())
        expected = 0
        for (start, end), _ in chunks:
            if start != expected:
                kind = "overlap" if start < expected else "gap"
                raise errors.IngestionBadRequest(f"File {name!r} has a {kind} at byte {min(start, expected)}: "
                                                 "upload chunks that cover it exactly once.")
            expected = end + 1
        self.upload(batch_id, ds_id, name, b"".join(p.read_bytes() for _, p in chunks))
        for _, p in chunks:
            p.unlink()
        folder.rmdir()

    def file_status(self, batch_id: str, name: str) -> int | None:
        """Bytes received of ``name``: a completed file's size, or what its chunks hold so far."""
        path = self.platform.lake.upload_path(self.scope.org, self.scope.sandbox, batch_id, name)
        if path.exists():
            return path.stat().st_size
        folder = self._chunk_dir(batch_id, name)
        return sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else None

    def _require_loading(self, batch_id: str, ds_id: str) -> None:
        batch = self.batch(batch_id)
        if batch["status"] != "loading" or batch["relatedObjects"][0]["id"] != ds_id:
            raise errors.IngestionBadRequest(f"Batch {batch_id} is {batch['status']} for dataset "
                                             f"{batch['relatedObjects'][0]['id']}; files go to a loading batch "
                                             "of their own dataset.")

    def _set(self, batch_id: str, **fields) -> dict:
        return self.catalog.update_batch(batch_id, **fields)

    def process(self, batch_id: str) -> None:
        """Validate every file against the XDM schema; write Parquet only if all pass."""
        try:
            self._process(batch_id)
        except Exception as exc:  # the batch never stays in flight: it fails with the reason
            self._set(batch_id, status="failed", completed=now_ms(),
                      errors=[{"code": "INTERNAL", "description": f"The batch could not be processed: {exc}"}])
            raise

    def _process(self, batch_id: str) -> None:
        batch = self.batch(batch_id)
        ds = self.catalog.dataset(batch["relatedObjects"][0]["id"])
        props, required, ident_path = validation_contract(self.registry, ds)
        fmt, multiline = batch["inputFormat"]["format"], batch["inputFormat"]["isMultiLineJson"]
        self._set(batch_id, status="processing", started=now_ms())
        writer = self.platform.lake.batch_writer(self.scope.org, self.scope.sandbox, ds["id"], batch_id)
        read_bytes = 0
        try:
            if not batch["files"]:
                raise RecordError("106", "The batch has no files. Upload at least one file before COMPLETE.")
            if self.platform.faults is not None and self.platform.faults.pick_batch(batch_id):
                raise RecordError("INTERNAL", "The batch could not be processed (an injected platform failure); "
                                              "ingest its files again in a new batch.")
            for name in batch["files"]:  # one file in memory at a time
                path = self.platform.lake.upload_path(self.scope.org, self.scope.sandbox, batch_id, name)
                data = path.read_bytes()
                read_bytes += len(data)
                try:
                    parquet = pq.ParquetFile(io.BytesIO(data)) if fmt == "parquet" and data.strip() else None
                    if parquet is not None and conforms_as_stored(parquet, props, required, ident_path):
                        writer.add_parquet(data, parquet.metadata.num_rows)  # nothing to convert: keep the bytes
                    else:
                        writer.add(conform(read_file(data, fmt, multiline), props, required, ident_path))
                except RecordError as exc:
                    exc.description = f"{name}: {exc.description}"
                    raise
                del data
        except Exception as exc:  # every failure ends the batch as failed, with nothing made visible
            writer.abort()
            err = exc if isinstance(exc, RecordError) else RecordError("101", f"Unreadable file: {exc}")
            self._set(batch_id, status="failed", completed=now_ms(),
                      errors=[{"code": err.code, "description": err.description, "rows": err.rows}],
                      metrics={"inputByteSize": read_bytes, "failureReason": err.description,
                               "recordsRead": writer.rows, "recordsWritten": 0})
            return
        written = writer.commit()
        self.platform.lake.delete_uploads(self.scope.org, self.scope.sandbox, batch_id)
        self.finish(batch, ds["id"], writer.rows, read_bytes, written)

    def finish(self, batch: dict, ds_id: str, rows: int, in_bytes: int, written: list) -> None:
        batch_id = batch["id"]
        self.catalog.batch_succeeded(batch_id, {
            "inputRecordCount": rows, "outputRecordCount": rows, "failedRecordCount": 0, "recordsRead": rows,
            "recordsWritten": rows, "inputByteSize": in_bytes, "outputByteSize": sum(p.stat().st_size for p in written),
            "partitionCount": 1, "inputFileCount": len(batch["files"]), "outputFileCount": len(written)})
        for old in (batch.get("replay") or {}).get("predecessors") or []:
            if self.catalog.find_batch(old) is not None:
                self._set(old, status="inactive", replacedBy=batch_id)
                # Replaced rows are never visible again, so their files go (AEP purges them later).
                self.platform.lake.delete_batch(self.scope.org, self.scope.sandbox, ds_id, old)


def register(router: Router) -> None:
    platform = router.platform

    def create(call: Call):
        return 201, IngestionBackend(call.scope, platform).create_batch(call.json())

    def upload(call: Call):
        IngestionBackend(call.scope, platform).upload(call.path["batch"], call.path["dataset"],
                                                      call.path["name"], call.body)
        return None

    def action(call: Call):
        act = call.params.get("action")
        if not act:
            raise errors.IngestionBadRequest("Pass ?action=COMPLETE, ?action=ABORT or ?action=REVERT.")
        IngestionBackend(call.scope, platform).act(call.path["batch"], act)
        return None

    def file_action(call: Call):
        backend, args = IngestionBackend(call.scope, platform), (call.path["batch"], call.path["dataset"],
                                                                   call.path["name"])
        act = (call.params.get("action") or "").upper()
        if act == "INITIALIZE":
            backend.initialize_file(*args)
        elif act == "COMPLETE":
            backend.complete_file(*args)
        else:
            raise errors.IngestionBadRequest("Pass ?action=INITIALIZE or ?action=COMPLETE for a chunked file.")
        return 201, None

    def chunk(call: Call):
        IngestionBackend(call.scope, platform).upload_chunk(call.path["batch"], call.path["dataset"],
                                                            call.path["name"], call.headers.get("content-range"),
                                                            call.body)
        return None

    def file_head(call: Call):
        size = IngestionBackend(call.scope, platform).file_status(call.path["batch"], call.path["name"])
        if size is None:
            raise errors.IngestionNotFound(f"No file {call.path['name']!r} in batch {call.path['batch']}.")
        return 200, None, {"Content-Length": str(size)}

    files = f"{BASE}/batches/{{batch}}/datasets/{{dataset}}/files/{{name:path}}"
    router.add(f"{BASE}/batches", ["POST"], create)
    router.add(files, ["PUT"], upload, max_body=MAX_FILE_BODY)
    router.add(files, ["POST"], file_action)
    router.add(files, ["PATCH"], chunk, max_body=MAX_FILE_BODY)
    router.add(files, ["HEAD"], file_head)
    router.add(f"{BASE}/batches/{{batch}}", ["POST"], action)
