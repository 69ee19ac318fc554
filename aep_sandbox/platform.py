"""The shared state of one sandbox process: config, metadata store, data lake and background work."""

import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures

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
        # Who hears that a segment job has finished (the Query Accelerated Store takes its daily snapshot). They run
        # after the job has ended, as AEP's reporting snapshot does; whoever reads what they write, or starts the
        # next segment job of the sandbox, first waits for them (``wait_for_segment_job_listeners``).
        self.segment_job_listeners: list[Callable[..., None]] = []
        self._listener_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aep-sandbox-snapshots")
        self._listening: dict[tuple[str, str], Future] = {}  # (org, sandbox) -> its listeners' latest run
        self._listening_lock = threading.Lock()

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

    def segment_job_ended(self, scope) -> None:
        """Tell the listeners, in the background, that a segment job of ``scope`` succeeded."""

        def tell() -> None:
            for listener in self.segment_job_listeners:
                try:
                    listener(scope, self)
                except Exception:  # the job's own result stands; only the reporting model missed a day
                    log.exception("a segment job listener failed for %s/%s", scope.org, scope.sandbox)

        with self._listening_lock:
            self._listening[(scope.org, scope.sandbox)] = self._listener_pool.submit(tell)

    def wait_for_segment_job_listeners(self, scope, timeout_s: float = 600) -> None:
        """Until the listeners of ``scope``'s last segment job are done (they run one at a time, in order)."""
        with self._listening_lock:
            pending = self._listening.get((scope.org, scope.sandbox))
        if pending is not None:
            wait_for_futures([pending], timeout=timeout_s)

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._listener_pool.shutdown(wait=True)  # a snapshot under way is finished, not lost
        self.landing_zone.shutdown()


def warm_up() -> None:
    """Pay the libraries' one-time initialisation (Parquet codecs, pandas that pyarrow imports on first use,
    DuckDB, the SQL dialects) while the process starts, so that the first batch or query is as quick as the ones
    after it."""
    started = time.perf_counter()
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), buf, compression="zstd")
    pq.read_table(io.BytesIO(buf.getvalue()))
    with duckdb.connect() as con:
        con.execute("SELECT 1").fetchall()
    sqlglot.parse_one("SELECT 1", read="spark").sql(dialect="duckdb")
    log.info("libraries warmed up in %.1f s", time.perf_counter() - started)
