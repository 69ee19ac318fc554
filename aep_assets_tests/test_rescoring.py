"""When a rescore is incremental, how rescored rows merge into the published scores, and drift (PSI)."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from aep_assets.ml.drift import DriftPolicy, DriftReference, Histogram
from aep_assets.ml.holdout import HoldoutGroups
from aep_assets.ml.score_summary import PREVIEW_COLUMNS, ScoredRows, ScoreSummary, summary_of, updated_summary
from aep_assets.ml.scoring import Bands
from aep_assets.pipeline.handoff import ScoreRun
from aep_assets.pipeline.rescoring import FULL, INCREMENTAL, merge_rescored, plan_rescore, scope_predicate

NOW = datetime(2026, 6, 2, tzinfo=UTC)
PUBLISHED = ScoreRun(key="s", features_key="f", changes_key="c", model_version="m1", bands={},
                     expected_conversion_rate={}, horizon_days=14, cutoff=NOW.isoformat(), scored_at=NOW.isoformat(),
                     expires_at=(NOW + timedelta(days=3)).isoformat(), mode="full", reason="", drift="ok",
                     event_batches=["b1", "b2"], profile_batches=["p1"])


def _plan(published=PUBLISHED, **changes):
    args = {"model_version": "m1", "event_batches": ["b1", "b2", "b3"], "profile_batches": ["p1"], "cutoff": NOW,
            **changes}
    return plan_rescore(published, **args)


def test_new_event_batches_make_an_incremental_plan():
    plan = _plan()
    assert (plan.mode, plan.new_batches) == (INCREMENTAL, ["b3"])
    assert scope_predicate(plan) == "_acp_system_metadata.acp_sourceBatchId IN ('b3')"


def test_nothing_new_is_an_empty_incremental_plan():
    plan = _plan(event_batches=["b1", "b2"])
    assert plan.mode == INCREMENTAL and plan.new_batches == [] and "nothing to rescore" in plan.reason


@pytest.mark.parametrize(("published", "changes", "reason"), [
    (None, {}, "no scores have been published"),
    (PUBLISHED, {"model_version": "m2"}, "model changed from m1 to m2"),
    (PUBLISHED, {"profile_batches": ["p2"]}, "profile dataset has new batches"),
    (PUBLISHED, {"event_batches": ["b9"]}, "replaced or deleted"),
    (PUBLISHED, {"cutoff": NOW + timedelta(days=4)}, "expired"),
    (PUBLISHED, {"requested": "full"}, "full rescore was requested"),
])
def test_whatever_makes_every_score_stale_makes_a_full_plan(published, changes, reason):
    plan = _plan(published, **changes)
    assert plan.mode == FULL and reason in plan.reason
    assert scope_predicate(plan) is None


def test_a_bad_mode_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"'mode' = 'fast'.*'auto'.*'full'"):
        _plan(requested="fast")


def _scores(ids, propensity, band, percentile, at):
    n = len(ids)
    return pl.DataFrame({"profile_id": ids, "propensity": propensity, "score": [round(100 * p) for p in propensity],
                         "percentile": percentile, "decile": [p // 10 + 1 for p in percentile], "band": band,
                         "model_version": ["m1"] * n, "scored_at": pl.Series([at] * n, dtype=pl.Datetime("us", "UTC")),
                         "expires_at": pl.Series([at + timedelta(days=7)] * n, dtype=pl.Datetime("us", "UTC")),
                         **{f"reason_{k}": ["x"] * n for k in (1, 2, 3)}})


def test_rescored_rows_replace_theirs_rank_in_the_whole_population_and_converters_leave():
    before = NOW - timedelta(days=1)
    ids = [f"u{i}" for i in range(10)]
    previous = _scores(ids, [i / 100 for i in range(10)], ["low"] * 6 + ["medium"] * 3 + ["high"],
                       [i * 10 for i in range(10)], before)
    features = pl.DataFrame({"profile_id": ids, "pageViews": list(range(10))})
    rescored = _scores(["u0"], [0.5], ["low"], [0], NOW)  # u0 is now the highest propensity
    holdout = HoldoutGroups(0.5, "salt")
    previous = previous.with_columns(pl.Series("group", holdout.of(ids, previous["band"].to_list())))
    merged = merge_rescored(previous, features, rescored, pl.DataFrame({"profile_id": ["u0"], "pageViews": [99]}),
                            pl.Series(["u5"]), Bands(90, 60), holdout, model_version="m1", scored_at=NOW,
                            expires_at=NOW + timedelta(days=7))
    s = merged.scores
    assert s.height == 9 and "u5" not in s["profile_id"]  # converted: no longer scored
    u0 = s.filter(pl.col("profile_id") == "u0").row(0, named=True)
    assert (u0["percentile"], u0["band"], u0["propensity"]) == (88, "medium", 0.5)  # 8 of 9 below it
    assert s.filter(pl.col("profile_id") == "u9")["band"][0] == "high"  # untouched rows keep what AEP holds
    assert dict(zip(merged.features["profile_id"], merged.features["pageViews"], strict=True))["u0"] == 99
    changes = merged.changes
    assert sorted(changes["profile_id"]) == ["u0", "u5"]
    marker = changes.filter(pl.col("profile_id") == "u5").row(0, named=True)
    assert marker["band"] == "converted" and marker["propensity"] is None and marker["model_version"] == "m1"
    assert marker["group"] is None  # in no audience
    # each row's control group is the one the model's holdout gives its identity and band, as a full rescore's
    assert s["group"].to_list() == list(holdout.of(s["profile_id"].to_list(), s["band"].to_list()))
    assert changes.filter(pl.col("profile_id") == "u0")["group"][0] == holdout.of(["u0"], ["medium"])[0]


def _merge_of_a_scored_population(rng):
    """Published scores of 3,000 profiles (with features, one a tenure on the clock), and a merge that rescores 200 of
    them and withdraws 50 converted ones; the drift reference was validated a month before the published cutoff."""
    n = 3_000
    ids = [f"u{i:05d}" for i in range(n)]
    propensity = rng.uniform(size=n)
    pct = (np.argsort(np.argsort(propensity)) * 100 // n).tolist()
    bands = Bands(90, 60)
    previous = _scores(ids, propensity.tolist(), bands.of(np.asarray(pct)).tolist(), pct, NOW - timedelta(days=1))
    features = pl.DataFrame({"profile_id": ids, "tenure": rng.uniform(30, 400, n) * 1440,
                             "orders": rng.poisson(2, n).astype(float)})
    reference = DriftReference.fit(features, ("tenure", "orders"), propensity, clock={"tenure": 1440.0},
                                   cutoff=(NOW - timedelta(days=31)).isoformat())
    picked = rng.choice(n, 250, replace=False)
    rescored_ids, converted_ids = [ids[i] for i in picked[:200]], [ids[i] for i in picked[200:]]
    rescored = _scores(rescored_ids, rng.uniform(size=200).tolist(), ["low"] * 200, [0] * 200, NOW)
    new_features = features.filter(pl.col("profile_id").is_in(rescored_ids)).with_columns(pl.col("orders") + 1)
    merged = merge_rescored(previous, features, rescored, new_features, pl.Series(converted_ids), bands,
                            HoldoutGroups(0.1, "salt"), model_version="m1", scored_at=NOW,
                            expires_at=NOW + timedelta(days=7))
    return ScoredRows(previous, features), merged, reference


@pytest.mark.parametrize("days_later", [0, 2])
def test_an_incremental_summary_is_the_one_counted_over_every_merged_score(days_later):
    """The published summary less the replaced rows plus the rescored ones: the same counts, histograms, drift counts
    and top rows as counting every merged score again, at the published cutoff and at a later one (where the
    time-since features' aged counts are counted again)."""
    published, merged, reference = _merge_of_a_scored_population(np.random.default_rng(7))
    before = summary_of(published, reference.at(NOW))
    cutoff = NOW + timedelta(days=days_later)
    updated = updated_summary(ScoreSummary.from_json(json.loads(json.dumps(before.to_json()))), merged.replaced,
                              merged.added, merged.rows, reference.at(cutoff), same_cutoff=days_later == 0)
    counted = summary_of(merged.rows, reference.at(cutoff))
    assert updated.rows == counted.rows == 2_950 and updated.band_rows == counted.band_rows
    assert updated.histogram == counted.histogram and updated.top == counted.top
    assert updated.drift_counts == counted.drift_counts and "tenure@aged" in updated.drift_counts
    assert updated.band_propensity_sum == pytest.approx(counted.band_propensity_sum)
    assert (updated.duplicate_ids, updated.out_of_range, updated.missing_reasons) == (0, 0, 0)
    if days_later:  # the aged counts moved with the clock, so reusing the published ones would have been wrong
        assert before.drift_counts["tenure@aged"] != counted.drift_counts["tenure@aged"]


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    reference = Histogram.fit(rng.normal(size=20_000))
    assert reference.psi(rng.normal(size=20_000)) < 0.01
    assert 0.1 < reference.psi(rng.normal(0.4, 1, size=20_000)) < 0.25
    assert reference.psi(rng.normal(1.5, 1, size=20_000)) > 0.25


def test_psi_counts_never_happened_as_its_own_bin():
    values = np.array([1.0, 2.0, np.nan, np.nan] * 1000)
    reference = Histogram.fit(values)
    assert reference.psi(values) == pytest.approx(0.0)
    assert reference.psi(np.array([1.0, 2.0] * 2000)) > 1  # everyone has the event now: a big shift


def test_histogram_counts_follow_the_bins_with_nulls_infinities_values_on_edges_and_far_rows():
    # bins: x < 0, 0 <= x < 1, 1 <= x < 2.5, x >= 2.5; then NULL; then far: beyond [0, 3] by its width (< -3, > 6)
    h = Histogram([0.0, 1.0, 2.5], [0.25, 0.25, 0.25, 0.25, 0.0], low=0.0, high=3.0)
    values = np.array([-10, -0.5, 0, 0, 0.999, 1, 2.5, 2.6, 6.0, 9.0, np.inf, -np.inf, np.nan, np.nan])
    assert h.counts(values).tolist() == [3, 3, 1, 5, 2, 4]
    assert Histogram([], [1.0, 0.0]).counts(np.array([np.nan, 1.0, -np.inf])).tolist() == [2, 1, 0]


@pytest.mark.parametrize("with_nan", [False, True])
def test_a_summarys_top_rows_are_the_highest_propensities_with_ties_broken_by_the_identity(with_nan):
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(size=500), 1)  # eleven values: ties everywhere, among the top rows too
    if with_nan:
        p[[7, 300]] = np.nan
    scores = pl.DataFrame({"profile_id": [f"p{i:03d}" for i in rng.permutation(500)], "propensity": p,
                           "band": "high"}).with_columns(
        *[pl.lit(None, pl.Int64).alias(c) for c in PREVIEW_COLUMNS if c not in ("profile_id", "propensity", "band")])
    summary = ScoreSummary()
    summary.add_scores(scores)
    expected = scores.select(PREVIEW_COLUMNS).sort(["propensity", "profile_id"], descending=True).head(10)
    assert [r["profile_id"] for r in summary.top] == expected["profile_id"].to_list()  # NaN ranks highest


def test_drift_reference_round_trips_and_ranks_the_worst_column_first():
    rng = np.random.default_rng(2)
    frame = pl.DataFrame({"a": rng.normal(size=5000), "b": rng.poisson(3, size=5000)})
    ref = DriftReference.from_json(DriftReference.fit(frame, ("a", "b"), rng.uniform(size=5000)).to_json())
    shifted = frame.with_columns(pl.col("b") + 3)
    psi = ref.psi(shifted, rng.uniform(size=5000))
    assert list(psi)[0] == "b" and psi["a"] < 0.01 and psi["score"] < 0.01
    assert DriftPolicy().verdict(psi) == "block" and DriftPolicy(block=100).verdict(psi) == "warn"


def test_drift_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="warn .* <= block"):
        DriftPolicy(warn=0.3, block=0.2)


def test_scores_published_by_an_older_version_are_rescored_in_full():
    plan = _plan(replace(PUBLISHED, event_batches=[], profile_batches=[]))  # published before batches were kept
    assert plan.mode == FULL and "profile dataset" in plan.reason


def _assess(ref: DriftReference, frame: pl.DataFrame, propensity: np.ndarray, policy: DriftPolicy | None = None):
    return (policy or DriftPolicy()).assess(ref, ref.counts(frame, propensity), frame.height)


def _cohort(rng: np.random.Generator, n: int = 20_000) -> pl.DataFrame:
    """A closed cohort at its cutoff: everyone acquired within one quarter, tenure in minutes."""
    return pl.DataFrame({"tenure": rng.uniform(365, 455, n) * 1440, "orders": rng.poisson(2, n).astype(float),
                         "noise": rng.normal(size=n)})


def test_a_tenure_that_grows_with_the_clock_is_no_drift():
    rng = np.random.default_rng(3)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "noise"), p, importance={"tenure": 0.5, "orders": 0.5},
                             clock={"tenure": 1440.0}, cutoff="2026-01-01T00:00:00+00:00")
    later = frame.with_columns(pl.col("tenure") + 90 * 1440)  # scored 90 days later: everyone 90 days older
    assert ref.psi(later, p)["tenure"] > 5  # as the old gate saw it
    found = _assess(ref.at("2026-04-01T00:00:00+00:00"), later, p)
    assert found.psi["tenure"] < 0.01 and found.verdict == "ok", found.reasons


def test_scoring_at_the_validated_cutoff_shows_no_drift():
    rng = np.random.default_rng(4)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "noise"), p, clock={"tenure": 1440.0},
                             cutoff="2026-01-01T00:00:00+00:00")
    found = _assess(ref.at("2026-01-01T00:00:00+00:00"), frame, p)
    assert found.verdict == "ok" and max(found.psi.values()) == pytest.approx(0.0)


def test_drift_in_a_column_the_model_does_not_use_neither_warns_nor_blocks():
    rng = np.random.default_rng(5)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "noise"), p,
                             importance={"tenure": 0.6, "orders": 0.4, "noise": 0.0})
    found = _assess(ref, frame.with_columns(pl.col("noise") + 3), p)
    assert found.psi["noise"] > 1 and found.weighted_psi < 0.01 and found.verdict == "ok"


def test_a_season_in_the_features_the_model_relies_on_warns_while_the_scores_hold():
    rng = np.random.default_rng(6)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "noise"), p,
                             importance={"tenure": 0.1, "orders": 0.9, "noise": 0.0})
    peak = frame.with_columns(pl.Series("orders", rng.poisson(4, 20_000).astype(float)))  # twice the activity
    found = _assess(ref, peak, p)
    assert found.verdict == "warn" and found.weighted_psi > 0.25 and "orders" in found.reasons[0]


def test_a_value_whose_unit_changed_blocks():
    rng = np.random.default_rng(6)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "noise"), p,
                             importance={"tenure": 0.8, "orders": 0.2, "noise": 0.0})
    recent = np.arange(20_000) < 4_000  # a fifth of the rows come from the batch in cents
    found = _assess(ref, frame.with_columns(pl.when(pl.Series(recent)).then(pl.col("orders") * 100)
                                            .otherwise(pl.col("orders")).alias("orders")), p)
    assert found.verdict == "block" and "outside" in found.broken["orders"], found.reasons


def test_a_shift_in_the_scores_blocks():
    rng = np.random.default_rng(7)
    frame = _cohort(rng)
    ref = DriftReference.fit(frame, ("orders",), rng.beta(2, 8, size=20_000))
    found = _assess(ref, frame, rng.beta(8, 2, size=20_000))
    assert found.verdict == "block" and found.score_psi > 1 and "score" in found.reasons[0]


def test_a_feature_that_became_all_null_blocks_though_its_psi_weighs_little():
    rng = np.random.default_rng(8)
    frame, p = _cohort(rng).with_columns(pl.Series("age", rng.uniform(18, 80, 20_000))), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders", "age"), p,
                             importance={"tenure": 0.49, "orders": 0.49, "age": 0.02})
    found = _assess(ref, frame.with_columns(pl.lit(None, pl.Float64).alias("age")), p)
    assert found.verdict == "block" and "age" in found.broken and "NULL" in found.broken["age"]


def test_a_count_that_collapsed_to_one_value_blocks():
    rng = np.random.default_rng(9)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders"), p, importance={"tenure": 0.9, "orders": 0.1})
    found = _assess(ref, frame.with_columns(pl.lit(0.0).alias("orders")), p)  # the event type stopped
    assert found.verdict == "block" and "one bin" in found.broken["orders"]


def test_a_population_that_shrank_blocks():
    rng = np.random.default_rng(10)
    frame, p = _cohort(rng), rng.uniform(size=20_000)
    ref = DriftReference.fit(frame, ("tenure", "orders"), p)
    found = _assess(ref, frame.head(5_000), p[:5_000])
    assert found.verdict == "block" and "5000 profiles scored against 20000" in found.reasons[0]
    assert _assess(ref, frame.head(5_000), p[:5_000], DriftPolicy(min_population_ratio=0.2)).verdict == "ok"


def test_a_reference_saved_before_it_carried_weights_still_reads():
    rng = np.random.default_rng(11)
    frame, p = _cohort(rng), rng.uniform(size=1000)
    old = {name: {"edges": h.edges, "shares": h.shares}
           for name, h in DriftReference.fit(frame.head(1000), ("orders",), p).histograms.items()}
    ref = DriftReference.from_json(old)
    assert ref.importance == {} and _assess(ref, frame.head(1000), p).verdict == "ok"
