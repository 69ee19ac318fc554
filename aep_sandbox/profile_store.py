"""The Real-Time Customer Profile store: profile-enabled datasets merged by primary identity.

Merge policy: timestamp-ordered (the default in AEP): for every attribute, the value from the
most recently completed batch that has one wins.
"""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import names
from .catalog import PROFILE_TAG, CatalogBackend
from .datalake import scan_sql
from .lockdown import locked_connection
from .names import path_sql
from .schema_registry import SchemaRegistryBackend, has_path
from .store import Scope
from .xdm import PROFILE_CLASS

_sql_path = path_sql

MERGE_POLICY_ID = "00000000-0000-0000-0000-00000000d0fa"


def merge_policy(scope: Scope) -> dict:
    return {"id": MERGE_POLICY_ID, "name": "Default timestamp-ordered", "imsOrgId": scope.org,
            "sandbox": {"sandboxName": scope.sandbox}, "schema": {"name": "_xdm.context.profile"},
            "version": 1, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
            "default": True, "activeOnEdge": False}


def members_dir(platform, scope: Scope) -> Path:
    """Where a sandbox's evaluated segments keep their members."""
    return names.inside(platform.config.data_dir, "segments", scope.org.replace("@", "_"), scope.sandbox)


def members_path(platform, scope: Scope, seg_id: str) -> Path:
    """The members of a segment at its last evaluation (a Parquet file of ``identity``)."""
    return names.inside(members_dir(platform, scope), names.object_id(seg_id, "Segment id"), "members.parquet")


class ProfileStore:
    def __init__(self, scope: Scope, platform) -> None:
        self.scope, self.platform = scope, platform
        self.registry = SchemaRegistryBackend(scope, platform.credentials.tenant_id)
        self.catalog = CatalogBackend(scope, self.registry)

    def sources(self) -> list[tuple[dict, dict, str, str]]:
        """(dataset, resolved properties, identity path, identity namespace) for each profile-enabled dataset."""
        out = []
        for ds in self.catalog.datasets():
            if not any(v.startswith("enabled:true") for v in ds["tags"].get(PROFILE_TAG, [])):
                continue
            schema = self.registry.get(ds["schemaRef"]["id"], "schemas")
            ident = self.registry.primary_identity(schema["$id"])
            if schema["meta:class"] != PROFILE_CLASS or ident is None:
                continue
            props, _ = self.registry.resolve(schema)
            out.append((ds, props, ident["xdm:sourceProperty"], ident.get("xdm:namespace") or "unknown"))
        return out

    def attributes_sql(self, paths: list[str]) -> str:
        """SQL for one row per identity with the merged value of each path as ``p0, p1, ...``."""
        selects = []
        for ds, props, ident, _ in self.sources():
            for batch in self.catalog.active_batches(ds["id"]):
                files = self.platform.lake.batch_files(self.scope.org, self.scope.sandbox, ds["id"], batch["id"])
                if not files:
                    continue
                cols = [f'CAST({_sql_path(ident)} AS VARCHAR) AS identity', f"{batch['completed']}::BIGINT AS _ts"]
                stored = pq.read_schema(files[0])  # a batch's files share one schema
                for i, path in enumerate(paths):
                    # A file may hold only some of the schema's fields (ingestion keeps what was sent).
                    present = has_path(props, "/" + path.replace(".", "/")) and _stored(stored, path)
                    cols.append(f'{_sql_path(path) if present else "NULL"} AS "p{i}"')
                selects.append(f"SELECT {', '.join(cols)} FROM {scan_sql(files)}")
        if not selects:
            cols = ", ".join(["NULL::VARCHAR AS identity"] + [f'NULL AS "p{i}"' for i in range(len(paths))])
            return f"SELECT {cols} WHERE FALSE"
        merged = ", ".join(f'arg_max("p{i}", _ts) FILTER (WHERE "p{i}" IS NOT NULL) AS "p{i}"'
                           for i in range(len(paths)))
        return (f"SELECT identity{', ' + merged if merged else ''} FROM ({' UNION ALL BY NAME '.join(selects)}) "
                "GROUP BY identity")

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection that reads only this sandbox's files (its datasets, its segments' members)."""
        return locked_connection(self.platform.lake.sandbox_dir(self.scope.org, self.scope.sandbox),
                                 members_dir(self.platform, self.scope))


def _stored(schema: pa.Schema, path: str) -> bool:
    """Whether the dotted ``path`` is a field of the Parquet file's schema."""
    node: pa.DataType | pa.Schema = schema
    for part in path.split("."):
        fields = node if isinstance(node, pa.Schema) else (
            [node.field(i) for i in range(node.num_fields)] if pa.types.is_struct(node) else [])
        match = next((f for f in fields if f.name == part), None)
        if match is None:
            return False
        node = match.type
    return True
