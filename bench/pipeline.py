"""Benchmark: materialise the whole graph on the local sandbox and report each stage's time and memory.

    python bench/pipeline.py --profiles 100000

Per stage: wall time (from Dagster's step events) and the peak resident memory of this process plus
the processes it started (the sandbox, the scoring job) during the stage. Two baselines, measured in
the same run:

- the bare cost of the data: simulating the same profiles and writing the XDM events as Parquet, with
  no AEP in between (``baseline_s``);
- the feature table's generated SQL, exactly as Query Service ran it, run directly by DuckDB over the
  datasets' Parquet files; ``feature_sql_ratio`` is the feature_table stage's time over it.

``model_path_s`` sums the stages after the simulation (feature table, training export, model, scoring
features, scores, write-back, audiences, activation). The last two lines read
``feature_sql_ratio=<r>`` and ``total_s=<s> model_path_s=<s> peak_rss_mb=<MB> baseline_s=<s>``.
"""

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import MemorySampler, work_dir  # noqa: E402  (bench/measure.py)


def baseline(n: int, seed: int) -> float:
    import pyarrow.parquet as pq

    from aep_assets.simulation import SimulationConfig, simulate
    from aep_assets.simulation.xdm import events_to_xdm

    start = time.perf_counter()
    sim = simulate(SimulationConfig(n_profiles=n, seed=seed))
    step = 50_000
    for lo in range(0, n, step):
        part = sim.events.filter((sim.events["profile_index"] >= lo) & (sim.events["profile_index"] < lo + step))
        pq.write_table(events_to_xdm(part, sim.profiles, "bench", seed), io.BytesIO())
    return time.perf_counter() - start


# The stages before the model's own path: the world, its truth, the platform's setup, EDA and outcome tracking.
NOT_MODEL_PATH = {"xdm_schemas", "synthetic_profiles", "simulation_truth", "eda_report", "score_outcomes",
                  "audience_uplift"}


def feature_sql_direct(data_dir: Path) -> float:
    """Seconds DuckDB takes to run the feature table's CTAS SELECT, as Query Service received it, straight over
    the datasets' Parquet files (each batch with the system columns Query Service adds), writing Parquet."""
    import duckdb
    from sqlglot import exp

    from aep_assets.aep import AEPClient, AEPConfig
    from aep_sandbox.datalake import DataLake, scan_sql
    from aep_sandbox.process import SandboxProcess
    from aep_sandbox.query.engine import system_columns
    from aep_sandbox.query.translate import parse, substitute, to_duckdb

    with SandboxProcess(data_dir, dlz="local") as sandbox:
        creds = sandbox.credentials
        client = AEPClient(AEPConfig(platform_url=sandbox.url, ims_url=sandbox.url, client_id=creds.client_id,
                                     client_secret=creds.client_secret, org_id=creds.org_id, sandbox_name="prod"))
        ctas = next(q for q in client.query.list(limit=100) if q.get("isCTAS") and q["state"] == "SUCCESS"
                    and "feature_table" in q["name"] and "adobe" not in q["name"])
        statement = parse(substitute(ctas["request"]["sql"], ctas.get("queryParameters")))[-1]
        select = statement.expression.this if isinstance(statement.expression, exp.Subquery) else statement.expression
        tables = {t.name.lower() for t in select.find_all(exp.Table)} - {
            c.alias_or_name.lower() for c in select.find_all(exp.CTE)}
        lake, org, views = DataLake(data_dir / "files"), sandbox.credentials.org_id, {}
        for ds in client.catalog.iter_datasets():
            table = client.catalog.table_name(ds)
            if table in tables:
                views[table] = [f"SELECT *, {system_columns(b)} FROM "
                                f"{scan_sql(lake.batch_files(org, 'prod', ds['id'], b['id']))}"
                                for b in client.catalog.iter_batches(ds["id"], status="success")]
    out = work_dir("aep-bench-sql-") / "direct.parquet"
    with duckdb.connect(config={"threads": 2}) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table, scans in views.items():
            con.execute(f'CREATE VIEW "{table}" AS {" UNION ALL BY NAME ".join(scans)}')
        start = time.perf_counter()
        con.execute(f"COPY ({to_duckdb(select)}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reason-method", default="shap", choices=("shap", "path"),
                        help="propensity_scores' reason_method (see aep_assets/ml/explain.py)")
    args = parser.parse_args()

    import dagster as dg

    from aep_assets.definitions import materializable_assets, op_config
    from aep_assets.resources import build_resources

    root = work_dir("aep-bench-")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    sampler = MemorySampler()
    sampler.start()
    started = time.time()
    with dg.instance_for_test() as instance:
        demo = [a for a in materializable_assets() if a.keys and next(iter(a.keys)).path[0] == "cmle_demo"]
        result = dg.materialize(demo, resources=resources, instance=instance, run_config=op_config("cmle_demo", {
            "synthetic_profiles": {"config": {"n_profiles": args.profiles, "seed": args.seed}},
            "propensity_scores": {"config": {"reason_method": args.reason_method}}}))
        total = time.time() - started
        events = [e for e in instance.all_logs(result.run_id) if e.dagster_event and e.step_key]
    sampler.finish()
    if not result.success:
        raise SystemExit("The pipeline failed; see the log above.")
    steps: dict[str, dict[str, float]] = {}
    for e in events:
        kind, step = e.dagster_event.event_type_value, e.step_key.split("__", 1)[-1]
        if kind == "STEP_START":
            steps.setdefault(step, {})["start"] = e.timestamp
        elif kind == "STEP_SUCCESS":
            steps.setdefault(step, {})["end"] = e.timestamp
    print(f"profiles={args.profiles} reason_method={args.reason_method}")
    print(f"{'stage':<22}{'wall_s':>10}{'peak_rss_mb':>14}")
    for step, t in sorted(steps.items(), key=lambda kv: kv[1]["start"]):
        print(f"{step:<22}{t['end'] - t['start']:>10.2f}{sampler.peak(t['start'], t['end']):>14.0f}")
    peak = max(m for _, m in sampler.samples)
    model_path = sum(t["end"] - t["start"] for step, t in steps.items() if step not in NOT_MODEL_PATH)
    direct = feature_sql_direct(root / "aep")
    feature_stage = steps["feature_table"]["end"] - steps["feature_table"]["start"]
    base = baseline(args.profiles, args.seed)
    print(f"baseline (simulate + write XDM Parquet, no AEP): {base:.2f}s")
    print(f"feature SQL directly on DuckDB: {direct:.2f}s; feature_table stage: {feature_stage:.2f}s")
    print(f"feature_sql_ratio={feature_stage / direct:.2f}")
    print(f"total_s={total:.1f} model_path_s={model_path:.1f} peak_rss_mb={peak:.0f} baseline_s={base:.1f}")


if __name__ == "__main__":
    main()
