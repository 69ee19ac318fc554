"""Scoring in chunks with exact percentiles, and the engines Dagster hands it to through Pipes: the scores
of every engine equal the in-memory scores of the same rows (Spark's, in a whole run: test_pipeline_e2e.py)."""

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from aep_assets.assets.scoring_engines import InProcess, Subprocess, job_runner
from aep_assets.ml import batch_scoring
from aep_assets.ml.batch_scoring import ScoringJob, run_chunked, score_in_memory
from aep_assets.ml.drift import DriftReference
from aep_assets.ml.feature_set import ELIGIBLE, ID, LABEL
from aep_assets.ml.ranking import thresholds_duckdb, thresholds_in_memory
from aep_assets.ml.score_summary import ScoreSummary
from aep_assets.ml.train import TrainingConfig, train_model
from aep_assets.pipeline.spec import Scoring

FEATURES = ("clicks", "views", "minutes_since_click")
SCORED_AT = datetime(2026, 3, 1, tzinfo=UTC)


def _features(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    clicks = rng.poisson(1.5, n).astype(float)
    since = np.where(rng.random(n) < 0.4, np.nan, rng.exponential(2000, n))
    logit = 0.9 * clicks - 3 + np.where(np.isnan(since), -1, 0.5)
    return pl.DataFrame({
        ID: [f"p{seed}-{i:06d}" for i in rng.permutation(n)], "clicks": clicks,
        "views": rng.poisson(4, n).astype(float), "minutes_since_click": since,
        LABEL: (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        ELIGIBLE: (rng.random(n) < 0.9).astype(np.int32)})


@pytest.fixture(scope="module")
def model():
    train = _features(4000, 1).with_columns(pl.lit("train").alias("split"), pl.lit(SCORED_AT).alias("cutoff"))
    test = _features(2000, 2).with_columns(pl.lit("test").alias("split"), pl.lit(SCORED_AT).alias("cutoff"))
    return train_model(pl.concat([train, test]), FEATURES, TrainingConfig(seed=5, trials=2))


@pytest.fixture
def world(tmp_path, model):
    """Three Parquet files of scoring features and the job that scores them (isotonic calibration, so many
    profiles share a propensity and the identity must break the ties)."""
    frames = [_features(n, seed) for n, seed in ((2500, 10), (1, 11), (1800, 12))]
    inputs = []
    for i, frame in enumerate(frames):
        inputs.append(str(tmp_path / f"part-{i}.parquet"))
        frame.write_parquet(inputs[-1])
    (tmp_path / "model.txt").write_text(model.booster.model_to_string())
    all_rows = pl.concat(frames)
    reference = DriftReference.fit(all_rows.head(3000), FEATURES, np.linspace(0, 0.5, 3000))
    job = ScoringJob(
        model_path=str(tmp_path / "model.txt"), calibrator=model.calibrator.to_dict(), features=list(FEATURES),
        inputs=inputs, output_dir=str(tmp_path / "out"), bands={"high_min_percentile": 90,
                                                                  "medium_min_percentile": 60},
        model_version="v1", scored_at=SCORED_AT.isoformat(), expires_at=(SCORED_AT + timedelta(days=7)).isoformat(),
        holdout_share=0.2, holdout_salt="m", drift_reference=reference.to_json(), chunk_rows=1000)
    return {"job": job, "rows": all_rows, "reference": reference}


def _expected(job: ScoringJob, rows: pl.DataFrame) -> pl.DataFrame:
    scorer = job.scorer()
    return score_in_memory(scorer, rows.filter(pl.col(ELIGIBLE) == 1), job.stamp())


def _by_id(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(ID)


def test_chunked_scores_equal_in_memory_scores_with_exact_percentiles(world):
    job, rows = world["job"], world["rows"]
    summary = run_chunked(job)
    expected = _expected(job, rows)
    got = pl.read_parquet(Path(job.output_dir) / "scores.parquet")
    assert_frame_equal(_by_id(got), _by_id(expected))
    assert expected["propensity"].n_unique() < expected.height / 2  # ties the identity had to break
    assert summary.rows == summary.eligible_rows == expected.height and summary.valid
    assert summary.ineligible_rows == rows.height - expected.height
    assert summary.band_rows == dict(expected.group_by("band").len().iter_rows())
    assert summary.mean_propensity == pytest.approx(expected["propensity"].mean(), rel=1e-12)
    assert [r[ID] for r in summary.top] == expected.sort(["propensity", ID], descending=True)[ID].head(10).to_list()
    eligible = rows.filter(pl.col(ELIGIBLE) == 1)
    assert summary.psi(world["reference"]) == pytest.approx(
        world["reference"].psi(eligible, expected["propensity"].to_numpy()))
    written = pl.read_parquet(Path(job.output_dir) / "features.parquet")
    assert written.columns == [ID, *FEATURES] and written.height == expected.height
    assert sorted(p.name for p in Path(job.output_dir).iterdir()) == ["features.parquet", "scores.parquet"]


def test_chunks_score_side_by_side_each_thread_with_its_own_scorer_and_write_in_order(world, monkeypatch):
    """Two chunks score at once, on two threads with a Scorer each (LightGBM's boosters and TreeSHAP's caches are
    not shared between threads), and the files are the one-thread files, row for row."""
    job = world["job"]
    calls: list[tuple[str, int]] = []
    unranked = batch_scoring.Scorer.unranked

    def recorded(self, eligible):
        calls.append((threading.current_thread().name, id(self)))
        return unranked(self, eligible)

    monkeypatch.setattr(batch_scoring.Scorer, "unranked", recorded)
    chunks = sum(1 for _ in batch_scoring.read_chunks(job.inputs, job.chunk_rows, [ID]))
    outputs = {}
    for threads in (1, 2):
        monkeypatch.setattr(batch_scoring, "SCORING_THREADS", threads)
        calls.clear()
        job_n = ScoringJob(**{**job.to_json(), "output_dir": f"{job.output_dir}-{threads}"})
        summary = run_chunked(job_n)
        outputs[threads] = [pl.read_parquet(Path(job_n.output_dir) / f) for f in ("scores.parquet", "features.parquet")]
        chunk_calls = [c for c in calls if c[0].startswith("score-chunk")]
        assert len(chunk_calls) == chunks > 2  # every chunk, on the pool
        assert len({scorer for _, scorer in chunk_calls}) == threads
        assert len({thread for thread, _ in chunk_calls}) == threads
        assert summary.eligible_rows == outputs[threads][0].height
    for one, two in zip(outputs[1], outputs[2], strict=True):
        assert_frame_equal(one, two)


def percentiles(p: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The definition, by a full sort: floor(100 * rank / n), ranks in (propensity, profile_id) order."""
    rank = np.empty(len(p))
    rank[np.lexsort((ids.astype(str), p))] = np.arange(len(p))
    return np.floor(100 * rank / max(len(p), 1)).astype(np.int64)


@pytest.mark.parametrize("n", [1, 7, 99, 100, 101, 2345])
def test_rank_thresholds_give_the_in_memory_percentiles(tmp_path, n):
    rng = np.random.default_rng(n)
    frame = pl.DataFrame({ID: [f"id{i}" for i in rng.permutation(n)],
                          "propensity": np.round(rng.random(n), 1)})  # ten values: ties everywhere
    frame.write_parquet(tmp_path / "s.parquet")
    on_disk, in_memory = thresholds_duckdb([tmp_path / "s.parquet"]), thresholds_in_memory(frame)
    assert on_disk == in_memory
    expected = percentiles(frame["propensity"].to_numpy(), frame[ID].to_numpy())
    assert np.array_equal(on_disk.percentiles(frame), expected)
    if n >= 100:  # every percentile holds n / 100 profiles, rounded one way or the other
        assert set(np.bincount(expected, minlength=100)) <= {n // 100, -(-n // 100)}


def test_duplicate_identities_make_the_scores_invalid(world, tmp_path):
    job = world["job"]
    first = pl.read_parquet(job.inputs[0])
    twice = tmp_path / "twice.parquet"
    pl.concat([first, first.head(5)]).write_parquet(twice)
    summary = run_chunked(ScoringJob(**{**job.to_json(), "inputs": [str(twice)],
                                        "output_dir": str(tmp_path / "twice")}))
    assert summary.duplicate_ids == first.head(5)[ELIGIBLE].sum() and not summary.valid


def test_summaries_of_chunks_merge_into_the_summary_of_the_whole(world):
    scores = _expected(world["job"], world["rows"])
    whole, left, right = ScoreSummary(), ScoreSummary(), ScoreSummary()
    whole.add_scores(scores)
    left.add_scores(scores.head(1000))
    right.add_scores(scores.tail(scores.height - 1000))
    merged = ScoreSummary.from_json(left.merge(right).to_json())
    assert merged.band_rows == whole.band_rows and merged.histogram == whole.histogram
    assert merged.top == whole.top and merged.rows == whole.rows


def _materialize(runner_for, job: ScoringJob) -> tuple[dict, dict]:
    """A real Dagster run of an asset that hands the job to the runner; returns its summary and metadata."""
    out = {}

    @dg.asset
    def scores(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        outcome = runner_for(context)(job)
        out["summary"] = outcome.summary
        return dg.MaterializeResult(metadata=outcome.metadata)

    result = dg.materialize([scores], instance=dg.DagsterInstance.ephemeral())
    assert result.success
    mat = result.asset_materializations_for_node("scores")[0]
    return out, {k: v.value for k, v in mat.metadata.items()}


def test_subprocess_engine_through_pipes_equals_in_process(world):
    job, rows = world["job"], world["rows"]
    out, metadata = _materialize(lambda context: Subprocess(context), job)
    got = pl.read_parquet(Path(job.output_dir) / "scores.parquet")
    expected = _expected(job, rows)
    assert_frame_equal(_by_id(got), _by_id(expected))
    assert out["summary"].rows == expected.height and out["summary"].valid
    assert metadata["engine"] == "subprocess" and metadata["scored_rows"] == expected.height
    assert metadata["scoring_peak_rss_mb"] > 0


def test_a_job_of_one_chunk_scores_in_the_run_s_own_process_with_the_same_scores(world, tmp_path):
    """An incremental rescore's few rows: a new interpreter would cost more than the scoring."""
    job, rows = world["job"], world["rows"]
    few = tmp_path / "few.parquet"
    pl.read_parquet(job.inputs[0]).head(job.chunk_rows).write_parquet(few)
    small = ScoringJob(**{**job.to_json(), "inputs": [str(few)], "output_dir": str(tmp_path / "out")})
    out, metadata = _materialize(lambda context: Subprocess(context), small)
    expected = _expected(small, rows.filter(pl.col(ID).is_in(pl.read_parquet(few)[ID].implode())))
    assert_frame_equal(_by_id(pl.read_parquet(tmp_path / "out" / "scores.parquet")), _by_id(expected))
    assert out["summary"].rows == expected.height and out["summary"].valid
    assert metadata["engine"] == "local: one chunk, in this process"


def test_in_process_engine_and_the_engine_the_yaml_chooses(world):
    job = world["job"]
    assert InProcess()(job).summary.rows == _expected(job, world["rows"]).height
    assert isinstance(job_runner(None, Scoring(engine="local")), InProcess)
    with pytest.raises(ValueError, match="scoring.spark.entry_point, application_id, execution_role_arn"):
        Scoring(engine="spark", spark={"platform": "emr_serverless"})


def test_a_failing_job_fails_the_run_with_its_error(world, tmp_path):
    broken = ScoringJob(**{**world["job"].to_json(), "inputs": [str(tmp_path / "missing.parquet")]})

    @dg.asset
    def scores(context: dg.AssetExecutionContext) -> None:
        Subprocess(context)(broken)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([scores], instance=instance, raise_on_error=False)
    assert not result.success
    assert result.failure_data_for_node("scores").error.cause.cls_name == "DagsterPipesExecutionError"
    reported = [e.dagster_event.engine_event_data.error for e in instance.all_logs(result.run_id)
                if "closed with exception" in (e.message or "")]
    assert "missing.parquet" in reported[0].message  # the job's own exception, reported through Pipes


def test_the_scoring_job_runs_without_scikit_learn():
    """The subprocess job hides scikit-learn from LightGBM to start faster: nothing the job imports may need it."""
    code = ("import sys; from aep_assets.external.score_job import without_scikit_learn; without_scikit_learn(); "
            "import aep_assets.ml.batch_scoring, aep_assets.external.report, lightgbm; "
            "assert sys.modules['sklearn'] is None and 'scipy.stats' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
