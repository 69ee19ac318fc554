"""Benchmark: score N profiles with a trained model on one engine, as propensity_scores does.

    python bench/scoring.py --profiles 1000000 --engine subprocess

Trains a model on 60,000 labelled rows of the CMLE demo's 45 features, writes N profiles' scoring
features as Parquet files of at most 1,000,000 rows, then hands the scoring job (propensity, exact
percentiles, bands, three TreeSHAP reason codes, holdout groups, drift) to the engine:

- ``local``: the chunked job in this process;
- ``subprocess``: ``PipesSubprocessClient`` from a Dagster run, as the model's default;
- ``spark``: the Spark job on a local Spark (``local[*]``), through the same client.

``peak_rss_mb`` is the peak resident memory of what scored: this process for ``local``, else the
processes the run started (the subprocess; Spark's JVM and Python workers), sampled every 50 ms.
The baseline, measured in the same run, is LightGBM's plain prediction (no reason codes, no ranks)
of the same rows, chunk by chunk in this process; ``max_abs_diff`` compares its propensities with the
engine's, row by row on profile_id. The last line reads
``engine=<e> rows=<n> seconds=<s> peak_rss_mb=<MB> max_abs_diff=<d>``.
"""

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import MemorySampler, rss_mb  # noqa: E402  (bench/measure.py)

FILE_ROWS = 1_000_000
SCORED_AT = datetime(2026, 3, 1, tzinfo=UTC)


def features_frame(n: int, seed: int, names: tuple[str, ...]):
    """Counts and recencies with a signal in a few of them, and a label for training."""
    import numpy as np
    import polars as pl

    from aep_assets.ml.feature_set import ELIGIBLE, ID, LABEL

    rng = np.random.default_rng(seed)
    data = {}
    for name in names:
        if name.startswith("minutes_since"):
            data[name] = np.where(rng.random(n) < 0.4, np.nan, rng.exponential(20_000, n))
        else:
            data[name] = rng.poisson(2, n).astype(float)
    logit = (0.8 * data[names[0]] - 0.4 * data[names[1]] + 0.3 * data[names[2]] - 4
             + np.where(np.isnan(data[names[-1]]), -0.5, 0.5))
    data[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    data[ELIGIBLE] = np.ones(n, dtype=np.int32)
    data[ID] = np.char.add(f"s{seed}-", np.arange(n).astype(str))
    return pl.DataFrame(data)


def train(names: tuple[str, ...]):
    import polars as pl

    from aep_assets.ml.train import TrainingConfig, train_model

    frame = pl.concat([
        features_frame(40_000, 1, names).with_columns(pl.lit("train").alias("split")),
        features_frame(20_000, 2, names).with_columns(pl.lit("test").alias("split")),
    ]).with_columns(pl.lit(SCORED_AT).alias("cutoff"))
    return train_model(frame, names, TrainingConfig(seed=7, trials=4))


def write_inputs(n: int, names: tuple[str, ...], folder: Path) -> list[str]:
    paths = []
    for i, lo in enumerate(range(0, n, FILE_ROWS)):
        paths.append(str(folder / f"part-{i:04d}.parquet"))
        features_frame(min(FILE_ROWS, n - lo), 100 + i, names).write_parquet(paths[-1])
    return paths


def reference(job, folder: Path) -> tuple[float, Path]:
    """The baseline: plain in-process predictions of every row, chunk by chunk, written with their ids."""
    import polars as pl

    from aep_assets.ml.batch_scoring import ParquetSink, read_chunks
    from aep_assets.ml.feature_set import ID, feature_matrix

    scorer = job.scorer()
    path = folder / "reference.parquet"
    sink = ParquetSink(path)
    started = time.perf_counter()
    for chunk in read_chunks(job.inputs, job.chunk_rows, [ID, *job.features]):
        p = scorer.calibrator.apply(scorer.booster.predict(feature_matrix(chunk, scorer.features)))
        sink.write(pl.DataFrame({ID: chunk[ID], "propensity": p}))
    sink.close(pl.DataFrame({ID: [], "propensity": []}))
    return time.perf_counter() - started, path


def max_abs_diff(scores: str, reference_path: Path) -> tuple[float, int]:
    import duckdb

    with duckdb.connect(config={"memory_limit": "1GB", "threads": 2}) as con:
        diff, rows = con.execute(
            f"SELECT max(abs(a.propensity - b.propensity)), count(*) FROM read_parquet('{scores}') a "
            f"JOIN read_parquet('{reference_path}') b USING (profile_id)").fetchone()
    return float(diff), int(rows)


def run_engine(engine: str, job) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of the engine scoring the job."""
    import dagster as dg

    from aep_assets.assets.scoring_engines import InProcess, job_runner
    from aep_assets.pipeline.spec import Scoring

    sampler = MemorySampler(include_self=engine == "local")
    sampler.start()
    started = time.time()
    if engine == "local":
        InProcess()(job)
    else:
        @dg.asset
        def scores(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return dg.MaterializeResult(metadata=job_runner(context, Scoring(engine=engine))(job).metadata)

        assert dg.materialize([scores], instance=dg.DagsterInstance.ephemeral()).success
    ended = time.time()
    sampler.finish()
    return ended - started, sampler.peak(started, ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("local", "subprocess", "spark"), default="subprocess")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()

    from aep_assets.ml.batch_scoring import ScoringJob

    names = demo_feature_names()
    model = train(names)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        (folder / "model.txt").write_text(model.booster.model_to_string())
        t = time.perf_counter()
        inputs = write_inputs(args.profiles, names, folder)
        print(f"inputs: {args.profiles:,} profiles x {len(names)} features in {len(inputs)} file(s), "
              f"{time.perf_counter() - t:.1f} s")
        job = ScoringJob(
            model_path=str(folder / "model.txt"), calibrator=model.calibrator.to_dict(), features=list(names),
            inputs=inputs, output_dir=str(folder / "out"), bands={"high_min_percentile": 90,
                                                                  "medium_min_percentile": 60},
            model_version=model.version, scored_at=SCORED_AT.isoformat(),
            expires_at=(SCORED_AT + timedelta(days=7)).isoformat(), holdout_share=0.1, holdout_salt="bench",
            drift_reference=model_drift(model, names), chunk_rows=args.chunk_rows)
        baseline_s, reference_path = reference(job, folder)
        print(f"baseline (plain predict, in process): {baseline_s:.1f} s, bench process {rss_mb_self():.0f} MB")
        seconds, peak = run_engine(args.engine, job)
        scores = folder / "out" / ("scores.parquet" if args.engine != "spark" else "scores/*.parquet")
        diff, matched = max_abs_diff(str(scores), reference_path)
        if matched != args.profiles:
            raise SystemExit(f"{matched:,} of {args.profiles:,} rows matched the reference by profile_id")
        print(f"baseline_s={baseline_s:.1f} seconds_over_baseline={seconds / baseline_s:.2f}")
        print(f"engine={args.engine} rows={args.profiles} seconds={seconds:.1f} peak_rss_mb={peak:.0f} "
              f"max_abs_diff={diff:.3g}")


def demo_feature_names() -> tuple[str, ...]:
    """The CMLE demo's 45 features, resolved from its defs.yaml (it lists them all; no query needed)."""
    import yaml

    from aep_assets.pipeline.feature_builds import resolve_feature_set
    from aep_assets.pipeline.sources import SourceDataset, Sources
    from aep_assets.pipeline.spec import ModelSpec

    doc = yaml.safe_load((Path(__file__).parents[1] / "aep_assets/defs/cmle_demo/defs.yaml").read_text())
    spec = ModelSpec.model_validate(doc["attributes"])
    table = SourceDataset("t", "t", "t", "")
    return resolve_feature_set(None, spec, Sources((table,), table), spec.cutoff_times()[0]).names


def model_drift(model, names: tuple[str, ...]) -> dict:
    from aep_assets.ml.drift import DriftReference

    frame = features_frame(20_000, 3, names)
    return DriftReference.fit(frame, names, model.calibrator.apply(model.booster.predict(frame.select(names)
                                                                                          .to_numpy()))).to_json()


def rss_mb_self() -> float:
    import os

    return rss_mb(os.getpid())


if __name__ == "__main__":
    main()
