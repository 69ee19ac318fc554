"""Scoring as a subprocess Dagster starts with ``PipesSubprocessClient``:
``python -m aep_assets.external.score_job``. It scores in chunks (ml/batch_scoring.py), so its memory
stays flat however many profiles there are."""

import time

from dagster_pipes import open_dagster_pipes

from aep_assets.external.report import report
from aep_assets.ml.batch_scoring import ScoringJob, run_chunked


def main() -> None:
    with open_dagster_pipes() as pipes:
        job = ScoringJob.from_json(pipes.get_extra("job"))
        pipes.log.info(f"Scoring {len(job.inputs)} file(s) in chunks of {job.chunk_rows:,} rows "
                       f"with model {job.model_version}")
        started = time.perf_counter()
        summary = run_chunked(job)
        report(pipes, summary, engine="subprocess", seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main()
