"""Dataset files on disk: uploaded batch files, and the Parquet each successful batch becomes."""

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import names


def scan_sql(files: list) -> str:
    """DuckDB's scan of dataset Parquet files. Folder names like ``batch=x`` are not columns."""
    listing = ", ".join(names.quote_literal(str(f)) for f in files)
    return f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)"


class BatchWriter:
    """Writes a batch's files one at a time into a hidden folder; ``commit`` shows them all at once."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        pq.write_table(table, self._next(), compression="zstd")
        self.rows += table.num_rows

    def add_parquet(self, data: bytes, rows: int) -> None:
        """A Parquet file that already conforms, kept byte for byte."""
        self._next().write_bytes(data)
        self.rows += rows

    def _next(self) -> Path:
        return self.tmp / f"part-{len(list(self.tmp.iterdir())):05d}.parquet"

    def commit(self) -> list[Path]:
        shutil.rmtree(self.out, ignore_errors=True)
        self.tmp.rename(self.out)  # a batch's rows appear all at once or not at all
        return sorted(self.out.glob("*.parquet"))

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class DataLake:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _sandbox(self, org: str, sandbox: str) -> Path:
        return names.inside(self.root, org.replace("@", "_"), names.sandbox_name(sandbox))

    def upload_dir(self, org: str, sandbox: str, batch_id: str) -> Path:
        return names.inside(self._sandbox(org, sandbox), "uploads", names.object_id(batch_id, "Batch id"))

    def upload_path(self, org: str, sandbox: str, batch_id: str, name: str) -> Path:
        return names.inside(self.upload_dir(org, sandbox, batch_id), names.file_name(name))

    def sandbox_dir(self, org: str, sandbox: str) -> Path:
        return self._sandbox(org, sandbox)

    def datasets_dir(self, org: str, sandbox: str) -> Path:
        return self._sandbox(org, sandbox) / "datasets"

    def batch_dir(self, org: str, sandbox: str, dataset_id: str, batch_id: str) -> Path:
        return names.inside(self.datasets_dir(org, sandbox), names.object_id(dataset_id, "Dataset id"),
                            f"batch={names.object_id(batch_id, 'Batch id')}")

    def batch_writer(self, org: str, sandbox: str, dataset_id: str, batch_id: str) -> "BatchWriter":
        return BatchWriter(self.batch_dir(org, sandbox, dataset_id, batch_id))

    def batch_files(self, org: str, sandbox: str, dataset_id: str, batch_id: str) -> list[Path]:
        return sorted(self.batch_dir(org, sandbox, dataset_id, batch_id).glob("*.parquet"))

    def delete_batch(self, org: str, sandbox: str, dataset_id: str, batch_id: str) -> None:
        shutil.rmtree(self.batch_dir(org, sandbox, dataset_id, batch_id), ignore_errors=True)

    def delete_dataset(self, org: str, sandbox: str, dataset_id: str) -> None:
        shutil.rmtree(names.inside(self.datasets_dir(org, sandbox), names.object_id(dataset_id, "Dataset id")),
                      ignore_errors=True)

    def delete_uploads(self, org: str, sandbox: str, batch_id: str) -> None:
        shutil.rmtree(self.upload_dir(org, sandbox, batch_id), ignore_errors=True)
