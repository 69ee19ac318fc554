"""Where the pipeline's files live: a local directory or an S3 bucket. No Dagster here.

Keys are relative paths (``models/<version>/model.txt``). Both kinds also say where AEP should
export files so that they land in this storage: the local kind through the embedded sandbox's
Data Landing Zone, the S3 kind through AEP's Amazon S3 destination.
"""

import io
from abc import ABC, abstractmethod
from pathlib import Path

import polars as pl

from .aep.flow import ExportTarget

LANDING_ZONE = "landing-zone"


class Storage(ABC):
    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key``; return its URI."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""

    @abstractmethod
    def uri(self, key: str) -> str: ...

    @abstractmethod
    def export_target(self, path: str) -> tuple[ExportTarget, str]:
        """An AEP export target for folder ``path`` and the key prefix its files land under."""

    def exists(self, key: str) -> bool:
        return key in self.list_keys(key)

    def write_parquet(self, key: str, frame: pl.DataFrame) -> str:
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd")
        return self.write_bytes(key, buf.getvalue())

    def read_parquet(self, keys: list[str]) -> pl.DataFrame:
        if not keys:
            raise FileNotFoundError("No Parquet files to read.")
        return pl.concat([pl.read_parquet(io.BytesIO(self.read_bytes(k))) for k in keys], how="diagonal_relaxed")


class LocalStorage(Storage):
    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.base_dir)!r})"

    def _path(self, key: str) -> Path:
        path = (self.base_dir / key).resolve()
        if self.base_dir not in path.parents and path != self.base_dir:
            raise ValueError(f"Storage key {key!r} escapes {self.base_dir}.")
        return path

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list_keys(self, prefix: str) -> list[str]:
        root = self._path(prefix)
        if root.is_file():
            return [prefix]
        if not root.exists():
            return []
        return sorted(str(p.relative_to(self.base_dir)) for p in root.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def uri(self, key: str) -> str:
        return str(self._path(key))

    @property
    def landing_zone_dir(self) -> Path:
        """The Data Landing Zone of the embedded sandbox, kept inside this storage."""
        return self.base_dir / LANDING_ZONE

    def export_target(self, path: str) -> tuple[ExportTarget, str]:
        return ExportTarget(kind="dlz", path=path), f"{LANDING_ZONE}/dlz-destination/{path}"


class S3Storage(Storage):
    def __init__(self, client, bucket: str, prefix: str = "", access_key: str | None = None,
                 secret_key: str | None = None) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self._access_key, self._secret_key = access_key, secret_key

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def list_keys(self, prefix: str) -> list[str]:
        keys, token = [], None
        strip = len(self.prefix) + 1 if self.prefix else 0
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            keys += [obj["Key"][strip:] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def export_target(self, path: str) -> tuple[ExportTarget, str]:
        return ExportTarget(kind="s3", path=self._key(path), bucket=self.bucket, access_key=self._access_key,
                            secret_key=self._secret_key), path
