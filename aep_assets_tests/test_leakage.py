"""The no_leakage check: feature rows recomputed from raw events strictly before T must match."""

from datetime import UTC, datetime, timedelta

import polars as pl

from aep_assets.ml.feature_set import LABEL, reference_features
from aep_assets.pipeline.leakage import compare

from .demo import feature_set, flagged

FS = feature_set()

T = datetime(2026, 3, 1, tzinfo=UTC)
EVENTS = flagged(pl.DataFrame({
    "profile_id": ["a", "a", "a", "b", "b"],
    "eventType": ["directMarketing.emailSent", "directMarketing.emailClicked", "web.formFilledOut",
                  "commerce.productViews", "directMarketing.emailSent"],
    "timestamp": pl.Series([T - timedelta(days=2), T - timedelta(hours=1), T + timedelta(days=2),
                            T - timedelta(days=40), T], dtype=pl.Datetime("us", "UTC")),
}), FS)


def _honest_rows() -> pl.DataFrame:
    rows = pl.DataFrame({"profile_id": ["a", "b", "c"]}).join(reference_features(EVENTS, T, FS), on="profile_id",
                                                               how="left")
    counts = [c for c in FS.event_names if c not in FS.nullable]
    return rows.with_columns([pl.col(c).fill_null(0) for c in counts]).with_columns(
        pl.lit(T).alias("cutoff"), pl.lit("test").alias("split"), pl.lit(14).alias("horizonDays"),
        pl.Series(LABEL, [1, 0, 0]))


def test_rows_built_from_events_before_the_cutoff_pass():
    result = compare(_honest_rows(), EVENTS, FS)
    assert result.passed and result.rows_checked == 3


def test_a_row_that_counts_the_event_at_the_cutoff_fails():
    rows = _honest_rows().with_columns(
        pl.when(pl.col("profile_id") == "b").then(pl.col("emailsReceived") + 1).otherwise(pl.col("emailsReceived"))
        .alias("emailsReceived"))
    result = compare(rows, EVENTS, FS)
    assert not result.passed and result.mismatched_rows == 1
    assert result.mismatches_by_column == {"emailsReceived": 1}
    assert result.examples[0] == {"profile_id": "b", "cutoff": str(T), "column": "emailsReceived",
                                  "feature_table": 1.0, "recomputed": 0.0}


def test_a_whole_history_label_fails():
    rows = _honest_rows().with_columns(pl.Series(LABEL, [1, 1, 0]))  # b "converts" outside (T, T+H]
    result = compare(rows, EVENTS, FS)
    assert not result.passed and result.mismatches_by_column == {LABEL: 1}


def test_zero_minutes_for_never_is_caught():
    rows = _honest_rows().with_columns(pl.col("minutes_since_purchase").fill_null(0.0))
    assert compare(rows, EVENTS, FS).mismatches_by_column == {"minutes_since_purchase": 3}
