"""The shared state of one sandbox process: config, metadata store, data lake and background work."""

import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot

from .config import SandboxConfig
from .datalake import DataLake
from .dlz import open_landing_zone
from .faults import FaultInjector
from .lifecycle import Lifecycles
from .store import Store

log = logging.getLogger("aep_sandbox")
LANES = ("batches", "queries", "jobs")


class Platform:
    """Everything the services share. Constructing one starts nothing; ``start`` does (app.py)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.credentials = config.credentials
        self.store = Store(config.data_dir / "meta.sqlite")
        self.lake = DataLake(config.data_dir / "files")
        self.faults = FaultInjector(config)
        self.pg_address = config.pg_address  # Query Service's PostgreSQL endpoint, or None when not served
        # One pool per kind of work: batches never wait behind long queries, nor queries behind batches.
        self._pools = {lane: ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"aep-sandbox-{lane}")
                       for lane in LANES}
        self.running_queries: dict[str, duckdb.DuckDBPyConnection] = {}  # query id -> its engine connection
        self.landing_zone = open_landing_zone(config)
        self.lifecycles = Lifecycles(config.lifecycles, self._run)  # AEP's asynchronous work, paced
        # Who hears that a segment job has finished (the Query Accelerated Store takes its daily snapshot).
        self.segment_job_listeners: list[Callable[..., None]] = []

    def start(self) -> "Platform":
        # In the background: the sandbox listens at once, and a request that needs a library first waits for its
        # import to finish (Python's import lock), never for the rest of the warm-up.
        threading.Thread(target=warm_up, name="aep-sandbox-warm-up", daemon=True).start()
        return self

    def _run(self, fn: Callable[[], None], lane: str) -> None:
        """Run ``fn`` in the background, each kind of work (``lane``: batches, queries, jobs) in its own pool."""

        def run() -> None:
            try:
                fn()
            except Exception:  # the lifecycle records its own failure; this only keeps the log
                log.exception("background task failed")

        self._pools[lane].submit(run)

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self.landing_zone.shutdown()


def warm_up() -> None:
    """Pay the libraries' one-time initialisation (Parquet codecs, pandas that pyarrow imports on first use,
    DuckDB, the SQL dialects) while the process starts, so that the first batch or query is as quick as the ones
    after it."""
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), buf, compression="zstd")
    pq.read_table(io.BytesIO(buf.getvalue()))
    with duckdb.connect() as con:
        con.execute("SELECT 1").fetchall()
    sqlglot.parse_one("SELECT 1", read="spark").sql(dialect="duckdb")
