"""Scoring as a subprocess Dagster starts with ``PipesSubprocessClient``:
``python -m aep_assets.external.score_job``. It scores in chunks (ml/batch_scoring.py), so its memory
stays flat however many profiles there are."""

import sys
import time


def without_scikit_learn() -> None:
    """LightGBM imports scikit-learn whenever it is installed, for estimator wrappers this job never uses, and
    scikit-learn imports SciPy: more than a second of every scoring run. A ``None`` in ``sys.modules`` (Python's
    documented way to make a module unimportable) tells LightGBM it is absent; its Booster is the same."""
    if "sklearn" not in sys.modules:
        sys.modules["sklearn"] = None


def main() -> None:
    without_scikit_learn()
    from dagster_pipes import open_dagster_pipes

    from aep_assets.external.report import report
    from aep_assets.ml.batch_scoring import ScoringJob, run_chunked

    with open_dagster_pipes() as pipes:
        job = ScoringJob.from_json(pipes.get_extra("job"))
        pipes.log.info(f"Scoring {len(job.inputs)} file(s) in chunks of {job.chunk_rows:,} rows "
                       f"with model {job.model_version}")
        started = time.perf_counter()
        summary = run_chunked(job)
        report(pipes, summary, engine="subprocess", seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
