"""Benchmark: the local AEP sandbox under concurrent clients, and its Parquet ingestion throughput.

    python bench/sandbox_load.py --clients 8 --seconds 30

Phase 1: ``--clients`` threads, each with its own AEP client, call the sandbox for ``--seconds``:
Catalog lists and lookups, small batch ingestions (create, upload, complete, wait), and Query Service
queries (submit, wait). Every HTTP request's latency is recorded; an error is an operation that raised
or a response with status 429 or 5xx. Phase 2: one client ingests the XDM events of a simulation as one
Parquet batch; throughput is the Parquet bytes over the time from creating the batch to its success.
The baseline, measured in the same run, is reading and rewriting the same Parquet with pyarrow, the
least any ingestion must do. The last line reads ``rps=<n> p99_ms=<n> errors=<n>``.
"""

import argparse
import io
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import work_dir  # noqa: E402  (bench/measure.py)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ingest-profiles", type=int, default=100_000, help="profiles whose events phase 2 ingests")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from aep_assets.aep import AEPClient, AEPConfig
    from aep_assets.pipeline.ingest import ingest_batch, parquet_bytes
    from aep_assets.pipeline.schemas import ensure_schemas
    from aep_assets.simulation import SimulationConfig, simulate
    from aep_assets.simulation.xdm import events_to_xdm
    from aep_sandbox.process import SandboxProcess

    def client_for(sb: SandboxProcess) -> AEPClient:
        c = sb.credentials
        return AEPClient(AEPConfig(platform_url=sb.url, ims_url=sb.url, client_id=c.client_id,
                                   client_secret=c.client_secret, org_id=c.org_id))

    with SandboxProcess(work_dir("aep-bench-load-")) as sb:
        setup = client_for(sb)
        platform = ensure_schemas(setup)
        tenant = platform.tenant_id
        ds = setup.catalog.create_dataset("load events", platform.schema_id("event"))
        sim = simulate(SimulationConfig(n_profiles=args.ingest_profiles, seed=1))
        events = events_to_xdm(sim.events, sim.profiles, tenant, 1)
        ingest_batch(setup, ds["id"], [events.slice(0, 100_000)], replace=None, timeout_s=600)
        table = setup.catalog.table_name(setup.catalog.get_dataset(ds["id"]))
        small = parquet_bytes(events.slice(0, 1_000))

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def record(response, *_, **__):
            with lock:
                latencies.append(response.elapsed.total_seconds())
                if response.status_code == 429 or response.status_code >= 500:
                    errors.append(f"{response.status_code} {response.request.method} {response.url}")

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            client = client_for(sb)
            client.session.http.hooks["response"].append(record)
            while time.monotonic() < deadline:
                op = rng.choices(("catalog", "batch", "query"), weights=(6, 2, 2))[0]
                try:
                    if op == "catalog":
                        client.catalog.find_dataset("load events")
                        list(client.catalog.iter_batches(ds["id"], status="success", limit="5"))
                    elif op == "batch":
                        batch = client.ingestion.create_batch(ds["id"], "parquet")
                        client.ingestion.upload_file(batch["id"], ds["id"], "small.parquet", small)
                        client.ingestion.complete_batch(batch["id"])
                        client.ingestion.wait_for_batch(batch["id"], timeout_s=60)
                    else:
                        client.query.run(f"SELECT eventType, count(*) AS n FROM {table} GROUP BY eventType",
                                         name="load query", timeout_s=60)
                except Exception as exc:  # an error is counted, never hidden
                    with lock:
                        errors.append(f"{op}: {exc}")

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started

        data = parquet_bytes(events)
        t0 = time.monotonic()
        batch = setup.ingestion.create_batch(ds["id"], "parquet")
        setup.ingestion.upload_file(batch["id"], ds["id"], "events.parquet", data)
        setup.ingestion.complete_batch(batch["id"])
        done = setup.ingestion.wait_for_batch(batch["id"], timeout_s=600)
        ingest_s = time.monotonic() - t0
        t0 = time.monotonic()
        pq.write_table(pq.read_table(io.BytesIO(data)), io.BytesIO(), compression="zstd")
        baseline_s = time.monotonic() - t0
        assert done["metrics"]["recordsWritten"] == events.num_rows

    mb = len(data) / 1e6
    print(f"clients={args.clients} seconds={elapsed:.1f} requests={len(latencies)}")
    print(f"p50_ms={1000 * percentile(latencies, 0.5):.1f} p99_ms={1000 * percentile(latencies, 0.99):.1f}")
    for e in errors[:10]:
        print("error:", e)
    print(f"parquet ingestion: {mb:.1f} MB ({events.num_rows} XDM events) in {ingest_s:.2f} s = "
          f"{mb / ingest_s:.1f} MB/s; baseline (pyarrow read + rewrite, no AEP): {baseline_s:.2f} s = "
          f"{mb / baseline_s:.1f} MB/s")
    print(f"rps={len(latencies) / elapsed:.0f} p99_ms={1000 * percentile(latencies, 0.99):.0f} errors={len(errors)}")


if __name__ == "__main__":
    main()
