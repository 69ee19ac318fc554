"""The three goal kinds on two orgs' data shaped as real ones, first time, with the default gates and no run config.

The models are the examples users copy (``examples/models/store_*.yaml``, ``site_*.yaml``), loaded as a user's
``AEP_ASSETS_MODELS`` folder would load them. The data (real_orgs.py) is a closed cohort's purchase log over 18
months and a growing Web SDK site over six months with a seasonal peak; its truth is planted, so each kind is
measured against what really drives it, not only against the data.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.stats import spearmanr

from aep_assets.components.propensity_model import PropensityModel
from aep_assets.ml.feature_set import ID, PREDICTED_VALUE
from aep_assets.pipeline.spec import ModelSpec, parse_time
from aep_assets.resources import build_resources
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .real_orgs import closed_cohort, cohort_truth, growing_site, profile_records, site_truth

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
STORE = ("store_repeat_purchase", "store_churn", "store_value")
SITE = ("site_first_purchase", "site_churn", "site_value")


def example(name: str) -> ModelSpec:
    return PropensityModel.from_file(EXAMPLES / f"{name}.yaml").spec


def materialize(spec: ModelSpec, resources: dict, instance) -> dg.ExecuteInProcessResult:
    defs = PropensityModel(spec).build_defs(None)
    keys = [k for a in defs.assets if isinstance(a, dg.AssetsDefinition) for k in a.keys]
    return dg.materialize(list(defs.assets), resources=resources, instance=instance, raise_on_error=False,
                          selection=keys)


def metadata(instance, model: str, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey([model, asset]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _run(tmp_path_factory, tag: str, make, models: tuple[str, ...]) -> dict:
    root = tmp_path_factory.mktemp(tag)
    with SandboxProcess(root / "aep") as sb:
        org = make(client_for(sb))
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    out = {"root": root, "org": org, "resources": resources, "results": {}, "meta": {}, "scores": {}}
    with dg.instance_for_test() as instance:
        for name in models:
            result = materialize(example(name), resources, instance)
            out["results"][name] = result
            out["meta"][name] = {a: metadata(instance, name, a)
                                 for a in ("propensity_model", "scoring_features", "propensity_scores")
                                 if instance.get_latest_materialization_event(dg.AssetKey([name, a]))}
            scores = out["meta"][name].get("propensity_scores", {}).get("dagster/uri")
            out["scores"][name] = pl.read_parquet(scores) if scores else None
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _run(tmp_path_factory, "store", closed_cohort, STORE)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _run(tmp_path_factory, "site", growing_site, SITE)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def _first_run(result: dg.ExecuteInProcessResult) -> None:
    """The run succeeded and no check failed but drift's warnings, which must say why."""
    assert result.success
    for c in result.get_asset_check_evaluations():
        if not c.passed:
            assert c.check_name == "drift" and c.severity == dg.AssetCheckSeverity.WARN, (c.check_name, c.description)
            assert "moved" in c.description or "PSI" in c.description


@pytest.mark.parametrize("name", STORE)
def test_a_closed_cohort_runs_first_time_with_the_default_gates(store, name):
    _first_run(store["results"][name])


@pytest.mark.parametrize("name", SITE)
def test_a_growing_site_with_a_seasonal_peak_runs_first_time_with_the_default_gates(site, name):
    _first_run(site["results"][name])


def test_the_seasonal_peak_is_reported_as_drift_in_the_features_while_the_write_back_runs(site):
    result = site["results"]["site_churn"]
    drift = next(c for c in result.get_asset_check_evaluations() if c.check_name == "drift")
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "pageViews" in drift.description and result.success


def _holdout(run: dict, name: str, truth) -> pl.DataFrame:
    """The model's temporal-holdout predictions at the test cutoff, beside the planted truth there."""
    meta = run["meta"][name]["propensity_model"]
    holdout = pl.read_parquet(str(Path(meta["model_card_uri"]).with_name("holdout.parquet")))
    spec = example(name)
    test_cutoff = spec.cutoff_times(run["org"].today)[1]
    return holdout.join(truth(run["org"], test_cutoff, spec.goal.outcome_days), on=ID, how="inner")


def _truth_at_now(run: dict, name: str, truth) -> pl.DataFrame:
    spec = example(name)
    scores = run["scores"][name].filter(pl.col("propensity").is_not_null())
    as_of = parse_time("cutoff", run["meta"][name]["scoring_features"]["cutoff"])
    return scores.join(truth(run["org"], as_of, spec.goal.outcome_days), on=ID, how="inner")


@pytest.mark.parametrize(("fixture", "name", "truth"), [("store", "store_repeat_purchase", cohort_truth),
                                                        ("site", "site_first_purchase", site_truth)])
def test_a_conversion_model_recovers_the_planted_purchase_probability(request, fixture, name, truth):
    run = request.getfixturevalue(fixture)
    held = _holdout(run, name, truth)
    assert spearmanr(held["propensity"], held["p_purchase"]).statistic > 0.6
    assert held["propensity"].mean() == pytest.approx(held["p_purchase"].mean(), rel=0.15)
    now = _truth_at_now(run, name, truth)  # scored later: the ranking holds
    assert spearmanr(now["propensity"], now["p_purchase"]).statistic > 0.6


@pytest.mark.parametrize(("fixture", "name", "truth"), [("store", "store_churn", cohort_truth),
                                                        ("site", "site_churn", None)])
def test_a_churn_score_is_the_probability_of_no_goal_event(request, fixture, name, truth):
    run = request.getfixturevalue(fixture)
    held = pl.read_parquet(str(Path(run["meta"][name]["propensity_model"]["model_card_uri"]).with_name(
        "holdout.parquet")))
    assert held["propensity"].mean() == pytest.approx(held["goal_occurred"].mean(), rel=0.1)  # churners
    if truth is not None:
        planted = _holdout(run, name, truth)
        assert spearmanr(planted["propensity"], 1 - planted["p_purchase"]).statistic > 0.6


def test_a_site_churn_model_scores_only_the_active_visitors(site):
    scores = site["scores"]["site_churn"].filter(pl.col("propensity").is_not_null())
    first = site["scores"]["site_first_purchase"]
    assert 0 < scores.height < site["org"].truth.height  # lapsed visitors are not in a churn model's population
    assert scores["propensity"].is_between(0, 1).all() and first is not None


@pytest.mark.parametrize(("fixture", "name", "truth"), [("store", "store_value", cohort_truth),
                                                        ("site", "site_value", site_truth)])
def test_a_value_model_forecasts_the_planted_spend(request, fixture, name, truth):
    run = request.getfixturevalue(fixture)
    held = _holdout(run, name, truth)
    assert spearmanr(held["predicted_value"], held["expected_spend"]).statistic > 0.6
    assert held["predicted_value"].sum() == pytest.approx(held["expected_spend"].sum(), rel=0.2)
    now = _truth_at_now(run, name, truth)
    assert {"predicted_value", "propensity", "percentile", "band"} <= set(now.columns)
    assert spearmanr(now["predicted_value"], now["expected_spend"]).statistic > 0.6
    # percentiles and bands rank the predicted value, not the probability of a purchase
    assert now.filter(pl.col("band") == "high")["predicted_value"].min() >= \
        now.filter(pl.col("band") == "low")["predicted_value"].max()


@pytest.mark.parametrize(("fixture", "name"), [("store", "store_value"), ("site", "site_value")])
def test_a_value_model_reports_what_a_clv_practitioner_reads(request, fixture, name):
    meta = request.getfixturevalue(fixture)["meta"][name]["propensity_model"]
    assert meta["goal_kind"] == "value"
    assert meta["value_spearman"] > 0.3 and meta["value_normalized_gini"] > 0.3
    assert meta["value_rmse_skill"] > 0 and 0.7 < meta["value_total_ratio"] < 1.3


@pytest.mark.parametrize(("fixture", "names"), [("store", STORE), ("site", SITE)])
def test_own_data_models_carry_no_simulation_metadata(request, fixture, names):
    for name in names:
        assert "oracle_note" not in request.getfixturevalue(fixture)["meta"][name]["propensity_model"]


def test_the_site_scores_keep_profile_id_and_propensity_for_every_kind(site):
    for name in SITE:
        columns = set(site["scores"][name].columns)
        assert {ID, "propensity"} <= columns and (("predicted_value" in columns) == name.endswith("value"))


def test_churn_and_conversion_on_the_same_log_say_opposite_things(store):
    conversion = store["scores"]["store_repeat_purchase"].select(ID, pl.col("propensity").alias("buy"))
    churn = store["scores"]["store_churn"].select(ID, pl.col("propensity").alias("churn"))
    both = conversion.join(churn, on=ID).drop_nulls()
    assert both.height > 500 and np.corrcoef(both["buy"], both["churn"])[0, 1] < -0.5


# What is really broken still blocks the write-back: each break lands as a user's broken feed would (the recent
# batch replaced, or the CRM records), the model rescores everyone, and the drift gate names the cause.

def _rescore(run: dict, name: str) -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
    spec = example(name)
    defs = PropensityModel(spec).build_defs(None)
    keys = [dg.AssetKey([name, a]) for a in ("scoring_features", "propensity_scores", "aep_score_dataset")]
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets), resources=run["resources"], instance=instance,
                                raise_on_error=False, selection=keys,
                                run_config={"ops": {f"{name}__scoring_features": {"config": {"mode": "full"}}}})
    drift = next(c for c in result.get_asset_check_evaluations() if c.check_name == "drift")
    return result, drift


def _blocked(result: dg.ExecuteInProcessResult, drift, *words: str) -> None:
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR, drift.description
    assert all(w in drift.description for w in words), drift.description
    assert not result.success  # the blocking check stopped the write-back
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "aep_score_dataset"]


@pytest.fixture
def broken_site(site):
    """The site's org, with a test-owned client; each break is put back after its test."""
    with SandboxProcess(site["root"] / "aep") as sb:
        client = client_for(sb)
        yield site, client
        site["org"].restore_recent(client)
        site["org"].restore_profiles(client)


def in_cents(table: pa.Table) -> pa.Table:
    """The events with every order's priceTotal a hundred times larger: a feed that switched to cents."""
    commerce = table["commerce"].combine_chunks()
    order = commerce.field("order")
    cents = pa.StructArray.from_arrays(
        [order.field("purchaseID"), pc.multiply(order.field("priceTotal"), 100.0), order.field("currencyCode")],
        names=["purchaseID", "priceTotal", "currencyCode"], mask=order.is_null())
    fields = [cents if f.name == "order" else commerce.field(f.name) for f in commerce.type]
    return table.set_column(table.schema.get_field_index("commerce"), "commerce",
                            pa.StructArray.from_arrays(fields, fields=list(commerce.type)))


def test_an_identity_that_stopped_matching_blocks_the_write_back(broken_site):
    site, client = broken_site
    table = site["org"].tables["recent"]
    renamed = pa.array([[("ecid", ids[0][1])] for ids in table["identityMap"].to_pylist()],
                       table.schema.field("identityMap").type)
    site["org"].replace_recent(client, table.set_column(table.schema.get_field_index("identityMap"), "identityMap",
                                                        renamed))
    result, drift = _rescore(site, "site_first_purchase")
    _blocked(result, drift, "looks broken")


def test_an_event_type_that_disappeared_blocks_the_write_back(broken_site):
    site, client = broken_site
    table = site["org"].tables["recent"]
    site["org"].replace_recent(client, table.filter(pc.not_equal(table["eventType"], "commerce.productViews")))
    result, drift = _rescore(site, "site_first_purchase")
    _blocked(result, drift, "commerce_productViews", "one bin")


def test_a_value_whose_unit_changed_blocks(broken_site):
    site, client = broken_site
    site["org"].replace_recent(client, in_cents(site["org"].tables["recent"]))
    result, drift = _rescore(site, "site_value")
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR, drift.description
    assert "outside" in drift.description and "purchases_value" in drift.description


def test_a_crm_field_that_became_all_null_blocks(broken_site):
    site, client = broken_site
    crm = site["org"].profile_table
    ids = [m[0][1][0]["id"] for m in crm["identityMap"].to_pylist()]
    site["org"].replace_profiles(client, profile_records(np.array(ids), np.full(len(ids), 1980),
                                                         np.full(len(ids), np.nan)))
    result, drift = _rescore(site, "site_first_purchase")
    _blocked(result, drift, "loyalty_points", "NULL")


def test_a_profile_dataset_replaced_by_another_blocks(broken_site):
    site, client = broken_site
    n = site["org"].profile_table.num_rows
    other = np.array([f"crm-{i:06d}" for i in range(n)])  # another system's identities
    site["org"].replace_profiles(client, profile_records(other, np.full(n, 1980), np.full(n, 500.0)))
    result, drift = _rescore(site, "site_first_purchase")
    _blocked(result, drift, "NULL")


def test_the_source_datasets_keep_exactly_the_batches_the_user_left(broken_site):
    site, client = broken_site
    org = site["org"]
    assert sorted(client.ingestion.active_batch_ids(org.dataset["id"])) == sorted(org.batches.values())


def test_a_value_models_forecast_is_checked_against_the_spend_its_window_realised(store):
    # Scored 100 days ago, so its 90-day window has closed: score_outcomes compares predicted and realised spend.
    past = example("store_value").model_copy(update={"name": "store_value_past"})
    past = ModelSpec.model_validate({**past.model_dump(), "cutoffs": {"train": 290, "test": 200},
                                     "scoring": {"as_of": (store["org"].today - timedelta(days=100)).isoformat()}})
    with dg.instance_for_test() as instance:
        result = materialize(past, store["resources"], instance)
        meta = metadata(instance, "store_value_past", "score_outcomes")
    assert result.success and meta["evaluated_runs"] == 1
    assert 0.7 < meta["value_total_ratio"] < 1.3 and meta["value_spearman"] > 0.3
    assert "value_by_band" in meta


def test_a_dry_run_scores_and_warns_where_a_write_back_would_block(store):
    # store_value is a dry run: a unit that changed in its recent purchases blocks nothing, it warns.
    org = store["org"]
    with SandboxProcess(store["root"] / "aep") as sb:
        client = client_for(sb)
        org.replace_recent(client, in_cents(org.tables["recent"]))
        try:
            spec = example("store_value")
            defs = PropensityModel(spec).build_defs(None)
            with dg.instance_for_test() as instance:
                result = dg.materialize(
                    list(defs.assets), resources=store["resources"], instance=instance, raise_on_error=False,
                    selection=[dg.AssetKey(["store_value", a]) for a in ("scoring_features", "propensity_scores")],
                    run_config={"ops": {"store_value__scoring_features": {"config": {"mode": "full"}}}})
            drift = next(c for c in result.get_asset_check_evaluations() if c.check_name == "drift")
        finally:
            org.restore_recent(client)
    assert result.success and not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "outside" in drift.description


@pytest.mark.parametrize("name", ["site_value", "site_churn"])
def test_a_value_or_churn_model_rescores_only_the_profiles_with_new_events(site, name):
    from aep_assets.jobs import RESCORE_ASSETS
    from aep_assets.pipeline.ingest import ingest_batch

    from .org_data import page_views

    org, spec = site["org"], example(name)
    scored = site["scores"][name].filter(pl.col("propensity").is_not_null())[ID].head(20).to_list()
    defs = PropensityModel(spec).build_defs(None)
    keys = [dg.AssetKey([name, a]) for a in RESCORE_ASSETS]
    with dg.instance_for_test() as instance:  # published scores in step with the batches as they are now
        dg.materialize(list(defs.assets), resources=site["resources"], instance=instance, selection=keys)
    with SandboxProcess(site["root"] / "aep") as sb:
        client = client_for(sb)
        landed = ingest_batch(client, org.dataset["id"], [page_views(scored, org.today - timedelta(hours=2),
                                                                     tag=f"rescore-{name}")],
                              replace=None, timeout_s=60)["id"]
        try:
            with dg.instance_for_test() as instance:
                result = dg.materialize(list(defs.assets), resources=site["resources"], instance=instance,
                                        raise_on_error=False, selection=keys)
                meta = metadata(instance, name, "propensity_scores")
        finally:
            client.ingestion.revert_batch(landed)
    assert result.success and meta["mode"] == "incremental" and 0 < meta["rescored_profiles"] <= 20
    scores = pl.read_parquet(meta["dagster/uri"])
    assert (PREDICTED_VALUE in scores.columns) == (name == "site_value")
