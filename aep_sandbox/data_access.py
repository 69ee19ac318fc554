"""Data Access (``/data/foundation/export``): a batch's files, their download, and failed batches.

reference/aep_api.md §6. A successful batch is one directory file (``{batchId}-1``) holding its Parquet
files; ``?path=`` downloads one, and ``Range: bytes=a-b`` gives 206 with ``Content-Range``. A failed
batch keeps the files it was sent (``/batches/{id}/failed``) and its row errors
(``/batches/{id}/meta?path=row_errors``). Not modelled yet: dataset preview.
"""

import json
import re
from pathlib import Path

from starlette.responses import Response

from . import errors
from .catalog import CatalogBackend
from .http import Call, Router

BASE = "/data/foundation/export"
MEDIA = {".parquet": "application/parquet", ".json": "application/json", ".csv": "text/csv"}


def _batch(call: Call, batch_id: str) -> dict:
    batch = CatalogBackend(call.scope).find_batch(batch_id)
    if batch is None:
        raise errors.DataAccessNotFound(f"Batch {batch_id!r} was not found in this sandbox.")
    return batch


def _dataset_id(batch: dict) -> str:
    return batch["relatedObjects"][0]["id"]


def _download(call: Call, path: Path) -> Response:
    """The file's bytes, or the requested byte range of them (206)."""
    data = path.read_bytes()
    headers = {"Content-Type": MEDIA.get(path.suffix, "application/octet-stream"), "Accept-Ranges": "bytes"}
    wanted = call.headers.get("range")
    if not wanted:
        return Response(data if call.request.method != "HEAD" else b"", status_code=200,
                        headers={**headers, "Content-Length": str(len(data))})
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
    if not match or not (match.group(1) or match.group(2)):
        raise errors.RangeNotSatisfiable(f"Range {wanted!r} is not of the form 'bytes=start-end'.")
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
    else:  # a suffix: the last n bytes
        start, end = max(len(data) - int(match.group(2)), 0), len(data) - 1
    if start >= len(data) or start > end:
        raise errors.RangeNotSatisfiable(f"Range {wanted!r} starts past the file's {len(data)} bytes.")
    return Response(data[start:end + 1], status_code=206,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


def _listing(files: dict[str, Path], href: str) -> tuple[int, dict]:
    """Data Access's list of files: name, length and a download link each (``href`` + ``?path=``)."""
    entries = [{"name": n, "length": str(p.stat().st_size), "_links": {"self": {"href": f"{href}?path={n}"}}}
               for n, p in sorted(files.items())]
    return 200, {"data": entries, "_page": {"limit": 100, "count": len(entries)}}


def _listing_or_file(call: Call, files: dict[str, Path], href: str, what: str):
    """The listing, or with ``?path=name`` that file's bytes."""
    name = call.params.get("path")
    if name is None:
        return _listing(files, href)
    if name not in files:
        raise errors.DataAccessNotFound(f"{what} has no file {name!r}.")
    return _download(call, files[name])


def register(router: Router) -> None:
    platform = router.platform

    def batch_files(call: Call):
        batch = _batch(call, call.path["id"])
        files = [] if batch["status"] != "success" else [{
            "dataSetFileId": f"{batch['id']}-1", "dataSetViewId": _dataset_id(batch), "version": "1.0.0",
            "created": str(batch.get("completed") or batch["created"]),
            "updated": str(batch.get("updated") or batch["created"]), "isValid": True,
            "_links": {"self": {"href": f"{call.base_url}{BASE}/files/{batch['id']}-1"}}}]
        return 200, {"data": files, "_page": {"limit": 100, "count": len(files)}}

    def lake_files(call: Call, batch: dict) -> dict[str, Path]:
        paths = platform.lake.batch_files(call.scope.org, call.scope.sandbox, _dataset_id(batch), batch["id"])
        return {p.name: p for p in paths}

    def file(call: Call):
        file_id = call.path["id"]
        batch = _batch(call, file_id.rsplit("-", 1)[0])
        files = lake_files(call, batch) if batch["status"] == "success" else {}
        if not files:
            raise errors.DataAccessNotFound(f"File {file_id!r} was not found.")
        return _listing_or_file(call, files, f"{call.base_url}{BASE}/files/{file_id}", f"File {file_id!r}")

    def failed(call: Call):
        batch = _batch(call, call.path["id"])
        if batch["status"] != "failed":
            raise errors.DataAccessNotFound(f"Batch {batch['id']} is {batch['status']}, not failed.")
        folder = platform.lake.upload_dir(call.scope.org, call.scope.sandbox, batch["id"])
        sent = {n: folder / n for n in batch.get("files", []) if (folder / n).exists()}
        return _listing_or_file(call, sent, f"{call.base_url}{BASE}/batches/{batch['id']}/failed",
                                f"Failed batch {batch['id']}")

    def meta(call: Call):
        batch = _batch(call, call.path["id"])
        path = call.params.get("path")
        if path == "row_errors":
            lines = [json.dumps({"code": e.get("code"), "message": e.get("description"), "rowNumber": row})
                     for e in batch.get("errors", []) for row in (e.get("rows") or [None])]
            return Response("\n".join(lines).encode(), media_type="application/json")
        if path == "input_files":
            return 200, {"data": [{"name": n} for n in batch.get("files", [])]}
        raise errors.DataAccessNotFound(f"Batch meta path {path!r} is not one of row_errors, input_files.")

    router.add(f"{BASE}/batches/{{id}}/files", ["GET"], batch_files)
    router.add(f"{BASE}/files/{{id}}", ["GET", "HEAD"], file)
    router.add(f"{BASE}/batches/{{id}}/failed", ["GET"], failed)
    router.add(f"{BASE}/batches/{{id}}/meta", ["GET"], meta)
