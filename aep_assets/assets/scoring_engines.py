"""Where propensity_scores' scoring job runs, handed off through Dagster Pipes (scoring.engine in the
model's YAML): a subprocess by default, Spark (local, EMR Serverless or Databricks), or this process.

Each runner takes a ``ScoringJob`` and returns the summary the job reported back; the job's own logs and
metadata (engine, seconds, peak memory) reach the run through Pipes."""

import sys
import time
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from ..external.report import SUMMARY, peak_rss_mb
from ..ml.batch_scoring import JobOutcome, ScoringJob, run_chunked
from ..ml.score_summary import ScoreSummary
from ..pipeline.spec import Scoring, SparkScoring

SUBPROCESS_JOB = "aep_assets.external.score_job"
SPARK_JOB = "aep_assets.external.spark_score_job"


def outcome_of(invocation: dg.PipesClientCompletedInvocation) -> JobOutcome:
    summaries = [m[SUMMARY] for m in invocation.get_custom_messages() if isinstance(m, dict) and SUMMARY in m]
    if not summaries:
        raise RuntimeError("The scoring job finished without reporting its summary through Dagster Pipes; see "
                           "its logs in this run.")
    reported = invocation.get_materialize_result().metadata or {}
    return JobOutcome(ScoreSummary.from_json(summaries[-1]),
                      {k: getattr(v, "value", v) for k, v in reported.items()})


def input_rows(job: ScoringJob) -> float:
    """The rows of a job's local Parquet inputs, from their footers; infinite when one cannot be read, so the job
    itself reports why."""
    try:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in job.inputs)
    except (OSError, pa.ArrowException):
        return float("inf")


@dataclass
class InProcess:
    """The chunked job in the Dagster process itself (what the other engines are compared with)."""

    remote = False

    def __call__(self, job: ScoringJob) -> JobOutcome:
        started = time.perf_counter()
        summary = run_chunked(job)
        return JobOutcome(summary, {"engine": "local", "scored_rows": summary.rows,
                                    "scoring_seconds": round(time.perf_counter() - started, 2),
                                    "scoring_peak_rss_mb": peak_rss_mb()})


@dataclass
class Subprocess:
    """``python -m <module>`` through ``PipesSubprocessClient``: the job's memory is its own, not the run's.

    A chunked job (the default module) whose input is at most one chunk, as an incremental rescore's usually is,
    runs in this process instead: one chunk is the memory the subprocess is there to keep out of the run, and a
    new interpreter would cost more than the scoring (about a second)."""

    context: dg.AssetExecutionContext
    module: str = SUBPROCESS_JOB
    env: dict | None = None
    remote = False

    def __call__(self, job: ScoringJob) -> JobOutcome:
        if self.module == SUBPROCESS_JOB and (rows := input_rows(job)) <= job.chunk_rows:
            self.context.log.info(f"Scoring {rows:,} rows, at most one chunk ({job.chunk_rows:,}), in this process")
            outcome = InProcess()(job)
            return JobOutcome(outcome.summary, {**outcome.metadata, "engine": "local: one chunk, in this process"})
        invocation = dg.PipesSubprocessClient().run(context=self.context, command=[sys.executable, "-m", self.module],
                                                    extras={"job": job.to_json()}, env=self.env)
        return outcome_of(invocation)


@dataclass
class EMRServerless:
    """spark_score_job.py as an EMR Serverless job run (dagster-aws): context through the job's environment,
    logs and messages through CloudWatch."""

    context: dg.AssetExecutionContext
    spark: SparkScoring
    remote = True

    def __call__(self, job: ScoringJob) -> JobOutcome:
        from dagster_aws.pipes import PipesEMRServerlessClient

        params = {
            "applicationId": self.spark.application_id, "executionRoleArn": self.spark.execution_role_arn,
            "name": f"aep_assets scoring {job.model_version}",
            "jobDriver": {"sparkSubmit": {"entryPoint": self.spark.entry_point,
                                          "sparkSubmitParameters": self.spark.spark_submit_parameters}},
        }
        return outcome_of(PipesEMRServerlessClient().run(context=self.context, start_job_run_params=params,
                                                         extras={"job": job.to_json()}))


@dataclass
class Databricks:
    """spark_score_job.py as a one-time Databricks run (dagster-databricks, installed separately): context
    and messages through DBFS. Credentials come from the environment (DATABRICKS_HOST, DATABRICKS_TOKEN)."""

    context: dg.AssetExecutionContext
    spark: SparkScoring
    remote = True

    def __call__(self, job: ScoringJob) -> JobOutcome:
        try:
            from dagster_databricks import PipesDatabricksClient
            from databricks.sdk import WorkspaceClient
            from databricks.sdk.service import jobs
        except ImportError as e:
            raise RuntimeError("scoring.spark.platform = 'databricks' needs dagster-databricks: "
                               "pip install dagster-databricks==0.29.27") from e
        cluster = dict(self.spark.cluster)
        task = jobs.SubmitTask.from_dict({
            "task_key": "aep_assets_scoring",
            **(cluster if "existing_cluster_id" in cluster else {"new_cluster": cluster}),
            "spark_python_task": {"python_file": self.spark.entry_point, "parameters": ["--databricks"]},
        })
        return outcome_of(PipesDatabricksClient(WorkspaceClient()).run(task=task, context=self.context,
                                                                       extras={"job": job.to_json()}))


def job_runner(context: dg.AssetExecutionContext, scoring: Scoring):
    """The runner scoring.engine (and scoring.spark.platform) asks for."""
    if scoring.engine == "local":
        return InProcess()
    if scoring.engine == "subprocess":
        return Subprocess(context)
    platform = scoring.spark.platform
    if platform == "emr_serverless":
        return EMRServerless(context, scoring.spark)
    if platform == "databricks":
        return Databricks(context, scoring.spark)
    # A local Spark: its Python workers must be this interpreter, which has lightgbm and this package.
    return Subprocess(context, SPARK_JOB, {"PYSPARK_PYTHON": sys.executable, "SPARK_MASTER": scoring.spark.master})
