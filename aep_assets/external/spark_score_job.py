"""Scoring on Spark, handed off by Dagster Pipes: ``spark-submit spark_score_job.py`` on a cluster
(EMR Serverless, or ``--databricks`` on Databricks), or ``python -m aep_assets.external.spark_score_job``
on a local Spark (``local[*]``).

The model's text is broadcast to the executors; ``mapInPandas`` scores the scoring features' Parquet
with the same ``Scorer`` as one machine does. Percentiles are exact: Spark sorts the scores by
(propensity, profile_id) across the cluster, the driver collects only the 99 keys at the threshold
ranks, and a second ``mapInPandas`` ranks every row against them (ml/ranking.py). Executors need this
package, ``lightgbm`` and ``polars`` (README: Scoring on Spark).
"""

import json
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import polars as pl
from dagster_pipes import PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes

# Absolute imports: a cluster runs this file as a script, with the package installed beside it.
from aep_assets.external.report import report
from aep_assets.ml.batch_scoring import ScoringJob, finish
from aep_assets.ml.explain import REASON_COLUMNS
from aep_assets.ml.feature_set import ELIGIBLE, ID, PREDICTED_VALUE
from aep_assets.ml.ranking import RankThresholds, keys_at_ranks, threshold_ranks
from aep_assets.ml.score_summary import ScoreSummary

UNRANKED = f"{ID} string, propensity double, score bigint, " + ", ".join(f"{c} string" for c in REASON_COLUMNS)
SCORES = (f"{ID} string, propensity double, score bigint, percentile bigint, decile bigint, band string, "
          "model_version string, scored_at timestamp, expires_at timestamp, "
          + ", ".join(f"{c} string" for c in REASON_COLUMNS) + ", `group` string")
SUMMARY = "summary string"


def schemas(job: ScoringJob) -> tuple[str, str]:
    """The unranked and the final scores' Spark schemas: a value goal's rows also carry predicted_value."""
    value = f", {PREDICTED_VALUE} double" if job.value_model_path else ""
    return UNRANKED + value, SCORES + value


def spark_session(job: ScoringJob):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"aep_assets scoring {job.model_version}")
    if "SPARK_MASTER" in os.environ or not os.environ.get("SPARK_ENV_LOADED"):  # not under spark-submit
        builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]")).config("spark.ui.enabled", "false")
    # Chunks as large as the subprocess engine's: TreeSHAP shares work between the rows of a chunk.
    return (builder.config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(job.chunk_rows))
            .config("spark.sql.session.timeZone", "UTC").getOrCreate())


def score_on_spark(spark, job: ScoringJob) -> ScoreSummary:
    """Writes ``scores/`` and ``features/`` (folders of parts) under ``job.output_dir``."""
    from pyspark.sql import functions as F

    out = job.output_dir.rstrip("/")
    spec = job.to_json()
    model = spark.sparkContext.broadcast(spark.read.text(job.model_path, wholetext=True).first()[0])
    value_model = spark.sparkContext.broadcast(
        spark.read.text(job.value_model_path, wholetext=True).first()[0] if job.value_model_path else None)
    unranked_schema, scores_schema = schemas(job)
    covered = spark.read.option("mergeSchema", "true").parquet(*job.inputs)
    features = (covered.where(F.col(ELIGIBLE) == 1)
                .select(F.col(ID).cast("string"), *[F.col(f"`{c}`").cast("double") for c in job.features]))

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = ScoringJob.from_json(spec).scorer(model.value, value_model.value)
        for batch in batches:
            yield scorer.unranked(pl.from_pandas(batch)).to_pandas()

    features.mapInPandas(score, unranked_schema).write.mode("overwrite").parquet(f"{out}/_unranked")
    unranked = spark.read.parquet(f"{out}/_unranked")
    rows = unranked.count()
    duplicates = rows - unranked.select(ID).distinct().count()
    wanted = spark.sparkContext.broadcast({r for r in threshold_ranks(rows) if r < rows})
    key = job.rank_key
    picked = (unranked.select(key, ID).orderBy(key, ID).rdd.zipWithIndex()
              .filter(lambda row: row[1] in wanted.value).map(lambda row: (row[1], row[0][0], row[0][1])).collect())
    thresholds = keys_at_ranks(picked, rows, duplicates, key).to_json()

    def rank(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ranks, stamp = RankThresholds.from_json(thresholds), ScoringJob.from_json(spec).stamp()
        for batch in batches:
            yield finish(pl.from_pandas(batch), ranks, stamp).to_pandas()

    unranked.mapInPandas(rank, scores_schema).write.mode("overwrite").parquet(f"{out}/scores")
    features.write.mode("overwrite").parquet(f"{out}/features")

    def summarize_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        summary, drift = ScoreSummary(), ScoringJob.from_json(spec).drift()
        for batch in batches:
            frame = pl.from_pandas(batch)
            summary.add_scores(frame)
            summary.add_drift(drift, frame.select(ID), frame["propensity"].to_numpy())
        yield pd.DataFrame({"summary": [json.dumps(summary.to_json())]})

    def summarize_features(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        summary, drift = ScoreSummary(), ScoringJob.from_json(spec).drift()
        for batch in batches:
            frame = pl.from_pandas(batch)
            summary.add_drift(drift, frame, np.empty(0))  # the score's share comes from the scores
        yield pd.DataFrame({"summary": [json.dumps(summary.to_json())]})

    parts = (spark.read.parquet(f"{out}/scores").mapInPandas(summarize_scores, SUMMARY).collect()
             + spark.read.parquet(f"{out}/features").mapInPandas(summarize_features, SUMMARY).collect())
    summary = ScoreSummary()
    for part in parts:
        summary = summary.merge(ScoreSummary.from_json(json.loads(part["summary"])))
    summary.duplicate_ids, summary.eligible_rows = duplicates, rows
    summary.ineligible_rows = covered.where(F.col(ELIGIBLE) != 1).count()
    return summary


def main(argv: list[str]) -> None:
    on_databricks = "--databricks" in argv
    pipes_io = ({"context_loader": PipesDbfsContextLoader(), "message_writer": PipesDbfsMessageWriter()}
                if on_databricks else {})
    with open_dagster_pipes(**pipes_io) as pipes:
        job = ScoringJob.from_json(pipes.get_extra("job"))
        spark = spark_session(job)
        pipes.log.info(f"Scoring on Spark {spark.version} ({spark.sparkContext.master}) with model {job.model_version}")
        started = time.perf_counter()
        try:
            summary = score_on_spark(spark, job)
        finally:
            if not on_databricks:  # Databricks owns its session
                spark.stop()
        report(pipes, summary, engine="spark", seconds=time.perf_counter() - started)


if __name__ == "__main__":
    main(sys.argv[1:])
