"""Data Access: list and download a batch's files, and read what a failed batch was sent."""

import json

from .session import AEPSession

BASE = "/data/foundation/export"


class DataAccess:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def batch_files(self, batch_id: str) -> list[dict]:
        """The batch's dataset files (directories), each with a ``dataSetFileId``."""
        return self.session.json("GET", f"{BASE}/batches/{batch_id}/files")["data"]

    def files(self, file_id: str) -> list[dict]:
        """The files inside one dataset file id: ``name`` and ``length`` each."""
        return self.session.json("GET", f"{BASE}/files/{file_id}")["data"]

    def download(self, file_id: str, name: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """A file's bytes, or only ``byte_range`` (first and last byte, inclusive)."""
        headers = {"Accept": "*/*", **({"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {})}
        return self.session.request("GET", f"{BASE}/files/{file_id}", params={"path": name},
                                    headers=headers).content

    def batch_contents(self, batch_id: str) -> dict[str, bytes]:
        """Every file of a successful batch, by name."""
        return {f["name"]: self.download(d["dataSetFileId"], f["name"])
                for d in self.batch_files(batch_id) for f in self.files(d["dataSetFileId"])}

    def failed_files(self, batch_id: str) -> list[dict]:
        return self.session.json("GET", f"{BASE}/batches/{batch_id}/failed")["data"]

    def row_errors(self, batch_id: str) -> list[dict]:
        text = self.session.request("GET", f"{BASE}/batches/{batch_id}/meta", params={"path": "row_errors"}).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]
