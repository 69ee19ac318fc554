"""Feature tables built by Query Service CTAS from ``sql/``, versioned by their inputs.

A feature table's name carries a hash of its SQL, parameters and the batches it reads, so a re-run
over unchanged data finds the table it made before instead of creating another, and a run over new
data makes a new table and drops the old one.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..aep import AEPClient
from .platform import EVENT_DATASET, PROFILE_DATASET, require_dataset

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
INCLUDES = ("adobe_features", "features", "labels")  # sql/{name}.sql, inlined where a statement says $name


def load_sql(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the SQL of each asset lives in sql/.")
    return path.read_text()


def compose(name: str) -> str:
    """The statement of ``sql/{name}.sql`` with the shared subqueries (``$features``, ...) inlined."""
    sql = load_sql(name)
    for include in INCLUDES:
        sql = sql.replace(f"${include}", load_sql(include).strip())
    return sql


def render(sql: str, params: dict) -> str:
    """What AEP runs after substituting ``queryParameters`` (longest names first)."""
    for key in sorted(params, key=len, reverse=True):
        sql = sql.replace(f"${key}", str(params[key]))
    return sql


def parse_time(field: str, value: str) -> datetime:
    """An ISO date or datetime from run config, in UTC when it names no zone."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"Config '{field}' = {value!r} is not an ISO date or datetime; use e.g. '2026-10-29' "
                         "or '2026-10-29T00:00:00+00:00', or leave it empty for the default.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def format_cutoff(cutoff: datetime) -> str:
    if cutoff.tzinfo is None:
        raise ValueError(f"cutoff {cutoff.isoformat()} has no timezone; give it in UTC, e.g. 2026-10-29T00:00:00Z.")
    return cutoff.strftime("%Y-%m-%d %H:%M:%S+00:00")


@dataclass
class FeatureBuild:
    table: str
    dataset: dict
    sql: str
    params: dict
    query: dict | None = None  # None when an identical table already existed
    dropped: list[str] = field(default_factory=list)

    @property
    def reused(self) -> bool:
        return self.query is None


def build_feature_dataset(client: AEPClient, *, name: str, table_prefix: str, params: dict,
                          input_dataset_ids: list[str], timeout_s: float = 3600) -> FeatureBuild:
    sql = compose(name)
    inputs = sorted(b for ds in input_dataset_ids for b in client.ingestion.active_batch_ids(ds))
    digest = hashlib.sha256("\n".join([sql, repr(sorted(params.items())), *inputs]).encode()).hexdigest()[:12]
    table = f"{table_prefix}_{digest}"
    all_params = {**params, "table": table}
    existing = client.catalog.find_dataset(table)
    query = None
    if existing is None:
        query = client.query.run(sql, name=f"aep_assets {name} {digest}", params=all_params, timeout_s=timeout_s)
        existing = client.catalog.find_dataset(table)
        if existing is None:
            raise LookupError(f"Query {query['id']} succeeded but Catalog has no dataset named {table}.")
    dropped = []
    for ds in client.catalog.iter_datasets(property=f"name~^{table_prefix}_"):
        if ds["name"] != table and ds["name"].startswith(table_prefix + "_"):
            client.query.run(f"DROP TABLE IF EXISTS {client.catalog.table_name(ds)}",
                             name=f"aep_assets drop {ds['name']}", timeout_s=timeout_s)
            dropped.append(ds["name"])
    return FeatureBuild(table, existing, render(sql, all_params), all_params, query, dropped)


def cutoff_values(cutoffs: dict[str, datetime]) -> str:
    """The ``$cutoffs`` VALUES rows of sql/features.sql: (TIMESTAMP 'T', 'split') per split."""
    if not cutoffs:
        raise ValueError("At least one cutoff is needed.")
    return ", ".join(f"(TIMESTAMP '{format_cutoff(t)}', '{split}')" for split, t in cutoffs.items())


def feature_params(client: AEPClient, cutoffs: dict[str, datetime], horizon_days: int,
                   scope: str = "TRUE") -> tuple[dict, list[str]]:
    """The query parameters of sql/features.sql for this AEP sandbox, and the datasets it reads. ``scope``
    is a predicate on the tenant userid that limits the profiles (see pipeline/rescoring.py)."""
    events = require_dataset(client, EVENT_DATASET, "synthetic_events")
    profiles = require_dataset(client, PROFILE_DATASET, "synthetic_profiles")
    params = {"tenant_id": client.schemas.tenant_id(), "events_table": client.catalog.table_name(events),
              "profiles_table": client.catalog.table_name(profiles), "cutoffs": cutoff_values(cutoffs),
              "horizon_days": horizon_days, "scope": scope}
    return params, [events["id"], profiles["id"]]
