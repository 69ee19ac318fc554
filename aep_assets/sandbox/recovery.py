"""After a crash: every lifecycle the dead process left in flight ends terminal and retryable.

Several sandbox processes may share a data directory, so work in flight records which process runs it
(``worker``: its pid and start time). When a sandbox starts it looks for batches, queries and CTAS
staging that belong to a process that no longer exists: a batch that was ``staging`` or ``processing``
ends ``failed`` with the retryable code ``INTERNAL`` (the client ingests its files again), a query
that was ``SUBMITTED`` or ``IN_PROGRESS`` ends ``FAILED`` (57P01, submit it again), and their temporary
files are removed. Work of live processes is left alone.
"""

import json
import logging
import os
import secrets
import shutil
from pathlib import Path

from .datalake import DataLake
from .store import Store, now_ms

log = logging.getLogger("aep_sandbox")
IN_FLIGHT_BATCH = ("staging", "processing")  # tuples: they read as SQL lists below too
IN_FLIGHT_QUERY = ("SUBMITTED", "IN_PROGRESS")
STAGING = ".staging"  # under a sandbox's datasets folder: CTAS rows written before their dataset exists


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_worker() -> str:
    pid = os.getpid()
    return f"{pid}:{_start_time(pid) or '0'}"


def alive(worker: str | None) -> bool:
    if not worker:
        return False
    pid, _, started = worker.partition(":")
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return _start_time(int(pid)) in (started, None)


IN_FLIGHT = f"""
SELECT org, sandbox, kind, id, body FROM resources
WHERE (kind = 'batch' AND json_extract(body, '$.status') IN {IN_FLIGHT_BATCH})
   OR (kind = 'query' AND json_extract(body, '$.state') IN {IN_FLIGHT_QUERY})
   OR (kind = 'dataset' AND json_extract(body, '$.ctasWorker') IS NOT NULL)
"""


def recover(store: Store, lake: DataLake) -> dict[str, int]:
    """End the lifecycles of dead workers (or of none, from before workers were recorded); return how many
    of each were ended."""
    from .catalog import CatalogBackend  # catalog.py reaches this module through the HTTP layer

    ended = {"batches": 0, "queries": 0, "ctas_tables": 0, "staging": 0}
    for org, sandbox, kind, obj_id, body in store.read().execute(IN_FLIGHT).fetchall():
        obj = json.loads(body)
        if alive(obj.get("ctasWorker" if kind == "dataset" else "worker")):
            continue
        scope = store.scope(org, sandbox)
        catalog = CatalogBackend(scope)
        if kind == "batch":
            catalog.update_batch(obj_id, completed=now_ms(), **_FAILED)
            dataset = (obj.get("relatedObjects") or [{}])[0].get("id", "")
            batch_dir = lake.batch_dir(org, sandbox, dataset, obj_id)
            shutil.rmtree(batch_dir.with_name(batch_dir.name + ".tmp"), ignore_errors=True)
            lake.delete_uploads(org, sandbox, obj_id)
        elif kind == "query":
            scope.update("query", obj_id, lambda q: {**q, "state": "FAILED", "errors": [
                {"code": "57P01", "message": "The sandbox restarted while the query ran; submit it again."}]})
        else:  # a CTAS table whose rows never landed
            catalog.forget_dataset(obj_id)
            lake.delete_dataset(org, sandbox, obj_id)
        ended[{"batch": "batches", "query": "queries", "dataset": "ctas_tables"}[kind]] += 1
    for staging in lake.root.glob(f"*/*/datasets/{STAGING}/*"):
        if not alive(staging.name.split("-", 1)[0].replace("_", ":")):
            shutil.rmtree(staging, ignore_errors=True)
            ended["staging"] += 1
    if any(ended.values()):
        log.warning("recovered after a crash: %s", ", ".join(f"{n} {k}" for k, n in ended.items() if n))
    return ended


_FAILED = {"status": "failed", "errors": [{"code": "INTERNAL", "description": "The sandbox stopped while it "
                                                                         "processed this batch; ingest its files "
                                                                         "again in a new batch."}]}


def staging_dir(datasets_dir: Path) -> Path:
    """A fresh folder of this process's for rows written before their dataset exists."""
    folder = datasets_dir / STAGING / f"{this_worker().replace(':', '_')}-{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    return folder
