"""Load Arrow tables into AEP datasets as Parquet batch files, replacing the dataset's earlier batches.

Only into datasets the model owns (see ownership.py): a replay replaces every earlier batch, which on a
dataset someone else fills would destroy their data.
"""

import io
import itertools
import logging
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..aep import AEPClient
from ..aep.errors import BatchFailed
from .ownership import require_owned

log = logging.getLogger(__name__)

ROWS_PER_FILE = 1_000_000
ENCODERS = 2  # Parquet encoding releases the GIL: two tables build and encode at once while files upload

# A batch's rows: Arrow tables, or functions that build them (called in the encoding threads, so building
# one table overlaps with encoding and uploading the others, and at most ENCODERS tables exist at once).
Tables = Iterable[pa.Table | Callable[[], pa.Table]]


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=statistics_columns(table.schema))
    return buf.getvalue()


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns whose statistics are written: the top-level fields and the leaves of the tenant's object
    (``_<tenant>``, where custom identities live). Ingestion keeps a file's bytes when the null counts show its
    required fields and primary identity complete, and queries prune row groups on top-level fields such as
    ``timestamp``; statistics on the standard field groups' nested leaves (``web``, ``directMarketing``, ...)
    would cost a fifth of the encoding."""
    def leaves(prefix: str, t: pa.DataType) -> list[str]:
        if pa.types.is_struct(t):
            return [p for i in range(t.num_fields) for p in leaves(f"{prefix}.{t.field(i).name}", t.field(i).type)]
        return [prefix]

    return [p for f in schema for p in (leaves(f.name, f.type) if f.name.startswith("_") else
                                        [] if pa.types.is_nested(f.type) else [f.name])]


def replace_dataset_rows(client: AEPClient, dataset: dict, tables: Tables, *, owner: str,
                         timeout_s: float = 3600) -> dict:
    """One batch holding ``tables`` (one Parquet file per slice) that replays every earlier batch.

    AEP's batch replay makes the new batch replace its predecessors when it succeeds, so a re-run
    leaves exactly one copy of the rows, and a failed batch leaves the previous rows in place.
    """
    require_owned(dataset, owner, "replay the batches of")
    previous = client.ingestion.active_batch_ids(dataset["id"])
    return ingest_batch(client, dataset["id"], tables, replace=previous or None, timeout_s=timeout_s)


def append_dataset_rows(client: AEPClient, dataset: dict, tables: Tables, *, owner: str,
                        timeout_s: float = 3600) -> dict:
    """One new batch next to the dataset's earlier ones, the way new data lands in AEP."""
    require_owned(dataset, owner, "add a batch to")
    return ingest_batch(client, dataset["id"], tables, replace=None, timeout_s=timeout_s)


def ingest_batch(client: AEPClient, dataset_id: str, tables: Tables, *, replace: list[str] | None,
                 timeout_s: float, attempts: int = 3) -> dict:
    """One batch of the tables' Parquet files. A batch that fails for the platform's reasons (not the data's)
    is ingested again as a new batch; its failed predecessor never made a row visible."""
    with tempfile.TemporaryDirectory(prefix="aep-batch-") as spool:
        files = SpooledFiles(Path(spool), tables)
        for attempt in range(1, attempts + 1):
            batch = client.ingestion.create_batch(dataset_id, "parquet", replace=replace)
            for name, data in files:
                client.ingestion.upload_file(batch["id"], dataset_id, name, data)
            client.ingestion.complete_batch(batch["id"])
            try:
                return client.ingestion.wait_for_batch(batch["id"], timeout_s=timeout_s)
            except BatchFailed as exc:
                if not exc.transient or attempt == attempts:
                    raise
                log.warning("batch %s failed (%s); ingesting its files again, attempt %d of %d", batch["id"],
                            exc.errors, attempt + 1, attempts)
    raise AssertionError("unreachable")


class SpooledFiles:
    """The batch's Parquet files as (name, bytes), made from ``tables`` (which may be a generator) on the
    first pass and kept on local disk, so that a retried batch can send them again in flat memory."""

    def __init__(self, folder: Path, tables: Tables) -> None:
        self.folder, self.source, self.names = folder, iter(tables), []
        self.numbers = itertools.count()  # one per table, so its files' names are unique

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for name in self.names:
            yield name, (self.folder / name).read_bytes()
        with ThreadPoolExecutor(ENCODERS) as pool:
            encoding: deque[Future[list[str]]] = deque()
            try:
                for item in self.source:
                    encoding.append(pool.submit(self._spool, next(self.numbers), item))
                    if len(encoding) >= ENCODERS:
                        yield from self._sent(encoding.popleft())
                while encoding:
                    yield from self._sent(encoding.popleft())
            finally:  # an abandoned pass still keeps what it encoded, so the next pass sends every file
                for future in encoding:
                    if future.exception() is None:
                        self.names.extend(future.result())

    def _spool(self, number: int, item: pa.Table | Callable[[], pa.Table]) -> list[str]:
        table = item() if callable(item) else item
        names = []
        for offset in range(0, max(table.num_rows, 1), ROWS_PER_FILE):
            names.append(f"part-{number:05d}-{len(names):04d}.parquet")
            (self.folder / names[-1]).write_bytes(parquet_bytes(table.slice(offset, ROWS_PER_FILE)))
        return names

    def _sent(self, future: Future[list[str]]) -> Iterator[tuple[str, bytes]]:
        names = future.result()
        self.names.extend(names)
        for name in names:
            yield name, (self.folder / name).read_bytes()
