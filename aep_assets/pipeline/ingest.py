"""Load Arrow tables into AEP datasets as Parquet batch files, replacing the dataset's earlier batches."""

import io
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ..aep import AEPClient

ROWS_PER_FILE = 1_000_000


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def replace_dataset_rows(client: AEPClient, dataset_id: str, tables: Iterable[pa.Table],
                         timeout_s: float = 3600) -> dict:
    """One batch holding ``tables`` (one Parquet file per slice) that replays every earlier batch.

    AEP's batch replay makes the new batch replace its predecessors when it succeeds, so a re-run
    leaves exactly one copy of the rows, and a failed batch leaves the previous rows in place.
    """
    previous = client.ingestion.active_batch_ids(dataset_id)
    return ingest_batch(client, dataset_id, tables, replace=previous or None, timeout_s=timeout_s)


def append_dataset_rows(client: AEPClient, dataset_id: str, tables: Iterable[pa.Table],
                        timeout_s: float = 3600) -> dict:
    """One new batch next to the dataset's earlier ones, the way new data lands in AEP."""
    return ingest_batch(client, dataset_id, tables, replace=None, timeout_s=timeout_s)


def ingest_batch(client: AEPClient, dataset_id: str, tables: Iterable[pa.Table], *, replace: list[str] | None,
                 timeout_s: float) -> dict:
    batch = client.ingestion.create_batch(dataset_id, "parquet", replace=replace)
    n = 0
    for table in tables:
        for offset in range(0, max(table.num_rows, 1), ROWS_PER_FILE):
            client.ingestion.upload_file(batch["id"], dataset_id, f"part-{n:05d}.parquet",
                                         parquet_bytes(table.slice(offset, ROWS_PER_FILE)))
            n += 1
    client.ingestion.complete_batch(batch["id"])
    return client.ingestion.wait_for_batch(batch["id"], timeout_s=timeout_s)
