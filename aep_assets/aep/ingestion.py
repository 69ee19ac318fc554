"""Batch ingestion: create a batch, upload its files, complete it, wait for success or failure."""

from .catalog import Catalog
from .errors import BatchFailed, UnexpectedState
from .polling import poll
from .session import AEPSession

BASE = "/data/foundation/import"
CHUNKED_ABOVE = 256 * 1024 * 1024
CHUNK_SIZE = 64 * 1024 * 1024
WAITING = {"loading", "loaded", "queued", "processing", "staging", "staged", "retrying", "stalled"}


class BatchIngestion:
    def __init__(self, session: AEPSession, catalog: Catalog) -> None:
        self.session, self.catalog = session, catalog

    def create_batch(self, dataset_id: str, fmt: str = "parquet", *, replace: list[str] | None = None) -> dict:
        body: dict = {"datasetId": dataset_id, "inputFormat": {"format": fmt, "isMultiLineJson": False}}
        if replace:
            body["replay"] = {"predecessors": replace, "reason": "replace"}
        return self.session.json("POST", f"{BASE}/batches", json=body)

    def upload_file(self, batch_id: str, dataset_id: str, name: str, data: bytes) -> None:
        """One PUT for a small file; AEP wants files over 256 MB in chunks (and requires it over 512 MB)."""
        if len(data) > CHUNKED_ABOVE:
            self.upload_large_file(batch_id, dataset_id, name, data)
            return
        self.session.request("PUT", f"{BASE}/batches/{batch_id}/datasets/{dataset_id}/files/{name}", data=data,
                             headers={"Content-Type": "application/octet-stream"})

    def upload_large_file(self, batch_id: str, dataset_id: str, name: str, data: bytes,
                          chunk_size: int = CHUNK_SIZE) -> None:
        """INITIALIZE, one PATCH per chunk with its Content-Range, then COMPLETE. A retried PATCH
        rewrites the same bytes, so retries are safe."""
        path = f"{BASE}/batches/{batch_id}/datasets/{dataset_id}/files/{name}"
        self.session.request("POST", path, params={"action": "INITIALIZE"})
        for start in range(0, len(data), chunk_size):
            chunk = data[start:start + chunk_size]
            self.session.request("PATCH", path, data=chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{start + len(chunk) - 1}"})
        self.session.request("POST", path, params={"action": "COMPLETE"})

    def abort_batch(self, batch_id: str) -> None:
        """Drop a batch that is still loading."""
        self.session.request("POST", f"{BASE}/batches/{batch_id}", params={"action": "ABORT"})

    def revert_batch(self, batch_id: str) -> None:
        """Make a successful batch's rows invisible (the batch becomes inactive)."""
        self.session.request("POST", f"{BASE}/batches/{batch_id}", params={"action": "REVERT"})

    def complete_batch(self, batch_id: str) -> None:
        self.session.request("POST", f"{BASE}/batches/{batch_id}", params={"action": "COMPLETE"})

    def wait_for_batch(self, batch_id: str, timeout_s: float = 1800) -> dict:
        def done(batch: dict) -> bool:
            match batch["status"]:
                case "success" | "active":
                    return True
                case "failed" | "failure" | "aborted" | "abandoned":
                    raise BatchFailed("Batch", batch_id, batch["status"],
                                      batch.get("errors") or batch.get("metrics", {}).get("failureReason"))
                case status if status in WAITING:
                    return False
                case other:
                    raise UnexpectedState(f"Batch {batch_id} is in state {other!r}, which this client does not know.")

        return poll(lambda wait_s: self.catalog.get_batch(batch_id, wait_s), done, what=f"Batch {batch_id}",
                    timeout_s=timeout_s)

    def ingest(self, dataset_id: str, files: list[tuple[str, bytes]], fmt: str = "parquet", *,
               replace: list[str] | None = None, timeout_s: float = 1800) -> dict:
        """Create, upload, complete and wait for one batch; ``replace`` replays earlier batches."""
        batch = self.create_batch(dataset_id, fmt, replace=replace)
        for name, data in files:
            self.upload_file(batch["id"], dataset_id, name, data)
        self.complete_batch(batch["id"])
        return self.wait_for_batch(batch["id"], timeout_s=timeout_s)

    def active_batch_ids(self, dataset_id: str) -> list[str]:
        return [b["id"] for b in self.catalog.iter_batches(dataset_id, status="success")]
