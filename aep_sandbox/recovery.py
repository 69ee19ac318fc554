"""After a crash: every lifecycle the dead process left in flight ends terminal and retryable.

Several sandbox processes may share a data directory, so work in flight records which process runs it
(workers.py). When a sandbox starts it looks for batches, queries and CTAS staging that belong to a
process that no longer exists: a batch that was ``staging`` or ``processing`` ends ``failed`` with the
retryable code ``INTERNAL`` (the client ingests its files again), a query that was ``SUBMITTED`` or
``IN_PROGRESS`` ends ``FAILED`` (57P01, submit it again), and their temporary files are removed. Work of
live processes is left alone. Each object is ended by the backend that owns it.
"""

import json
import logging
import shutil

from .catalog import CatalogBackend
from .platform import Platform
from .query_service import QueryServiceBackend
from .workers import STAGING, alive

log = logging.getLogger("aep_sandbox")
IN_FLIGHT_BATCH = ("staging", "processing")  # tuples: they read as SQL lists below too
IN_FLIGHT_QUERY = ("SUBMITTED", "IN_PROGRESS")

IN_FLIGHT = f"""
SELECT org, sandbox, kind, id, body FROM resources
WHERE (kind = 'batch' AND json_extract(body, '$.status') IN {IN_FLIGHT_BATCH})
   OR (kind = 'query' AND json_extract(body, '$.state') IN {IN_FLIGHT_QUERY})
   OR (kind = 'dataset' AND json_extract(body, '$.ctasWorker') IS NOT NULL)
"""


def recover(platform: Platform) -> dict[str, int]:
    """End the lifecycles of dead workers (or of none, from before workers were recorded); return how many
    of each were ended."""
    store, lake = platform.store, platform.lake
    ended = {"batches": 0, "queries": 0, "ctas_tables": 0, "staging": 0}
    for org, sandbox, kind, obj_id, body in store.read().execute(IN_FLIGHT).fetchall():
        obj = json.loads(body)
        if alive(obj.get("ctasWorker" if kind == "dataset" else "worker")):
            continue
        scope = store.scope(org, sandbox)
        catalog = CatalogBackend(scope)
        if kind == "batch":
            catalog.fail_interrupted_batch(obj_id)
            dataset = (obj.get("relatedObjects") or [{}])[0].get("id", "")
            batch_dir = lake.batch_dir(org, sandbox, dataset, obj_id)
            shutil.rmtree(batch_dir.with_name(batch_dir.name + ".tmp"), ignore_errors=True)
            lake.delete_uploads(org, sandbox, obj_id)
        elif kind == "query":
            QueryServiceBackend(scope, platform).fail_interrupted(obj_id)
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
