"""Batch ingestion: create a batch, upload its files, complete it, wait for success or failure."""

from .catalog import Catalog
from .errors import BatchFailed, UnexpectedState
from .polling import poll
from .session import AEPSession

BASE = "/data/foundation/import"
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
        self.session.request("PUT", f"{BASE}/batches/{batch_id}/datasets/{dataset_id}/files/{name}", data=data,
                             headers={"Content-Type": "application/octet-stream"})

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

        return poll(lambda: self.catalog.get_batch(batch_id), done, what=f"Batch {batch_id}", timeout_s=timeout_s)

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
