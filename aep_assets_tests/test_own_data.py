"""A model on an org's own Web SDK data, from one YAML definition: the whole graph, a dry run, two models
in one sandbox, and the refusal to touch what the project did not create.

The org's dataset is made through the sandbox's Schema Registry, Catalog and batch ingestion APIs from
Adobe's standard class and field groups (see org_data.py), with no ownership tag, as a user's org holds it.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

from aep_assets.components.propensity_model import build_model_defs
from aep_assets.pipeline.ingest import ingest_batch, replace_dataset_rows
from aep_assets.pipeline.ownership import OWNER_TAG, NotOwned, ensure_owned_dataset
from aep_assets.pipeline.spec import ModelSpec
from aep_assets.resources import AdobeAEP, build_resources
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .org_data import TIERS, create_org_dataset, create_profile_dataset, page_views

BLOCKING = ("data_sufficient", "one_row_per_profile", "enough_goals", "auc_floor", "calibrated", "no_leakage",
            "scores_valid", "batch_succeeded")


def shop_spec(name: str, org, **overrides) -> ModelSpec:
    """A purchase model as a user would write it: the org's dataset by name, repeat buyers eligible."""
    t = org.today
    return ModelSpec.model_validate({
        "name": name,
        "events": {"datasets": [org.dataset["name"]]},
        "goal": {"condition": "eventType = 'commerce.purchases'", "outcome_days": 30},
        "eligibility": {"exclude_prior_goal": False},
        "cutoffs": {"train": (t - timedelta(days=60)).date().isoformat(),
                    "test": (t - timedelta(days=30)).date().isoformat()},
        "scoring": {"as_of": t.isoformat()},
        "sufficiency": {"min_goal_profiles": 50, "min_non_goal_profiles": 50},
        **overrides})


def materialize(spec: ModelSpec, resources: dict, instance) -> dg.ExecuteInProcessResult:
    defs = build_model_defs(spec)
    return dg.materialize(list(defs.assets), resources=resources, instance=instance, raise_on_error=False,
                          selection=[k for a in defs.assets if isinstance(a, dg.AssetsDefinition) for k in a.keys])


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def metadata(instance, model: str, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey([model, asset]))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    """The org's data, a decoy dataset named like the model's tables, then the 'shop' model's whole graph,
    then a second model ('shop_value', explicit features with a value, the dataset by id), then 'shop' again."""
    root = tmp_path_factory.mktemp("org")
    with SandboxProcess(root / "aep") as sb:
        client = client_for(sb)
        data = create_org_dataset(client)
        decoy, _ = client.catalog.ensure_dataset("aep_assets_shop_feature_table_000000000000", data.schema_id)
        crm = create_profile_dataset(client, data.ecids)
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    value_spec = shop_spec("shop_value", data, events={"datasets": [data.dataset["id"]]}, profile={
        "dataset": crm["name"],
        "attributes": ["loyalty.points", {"name": "tier", "field": "loyalty.tier", "kind": "category"},
                       {"name": "age", "field": "person.birthYear", "kind": "years_since"}]}, features={
        "windows_days": [7, 28],
        "events": [{"name": "purchases", "condition": "eventType = 'commerce.purchases'",
                    "value": "commerce.order.priceTotal"},
                   {"name": "productViews", "condition": "eventType = 'commerce.productViews'"},
                   {"name": "cartAdds", "condition": "eventType = 'commerce.productListAdds'", "first": False}],
        "ratios": [{"name": "buysPerView_28d", "numerator": "purchases_28d", "denominator": "productViews_28d"}]})
    with dg.instance_for_test() as instance:
        shop = materialize(shop_spec("shop", data), resources, instance)
        shop_meta = {a: metadata(instance, "shop", a) for a in (
            "feature_table", "propensity_scores", "propensity_model", "aep_score_dataset", "propensity_audiences")}
        value = materialize(value_spec, resources, instance)
        value_meta = {a: metadata(instance, "shop_value", a) for a in ("feature_table", "propensity_scores",
                                                                        "training_export")}
        again = materialize(shop_spec("shop", data), resources, instance)
        ticks = _sensor_ticks(shop_spec("shop", data), root, resources, instance, data)
    return {"root": root, "data": data, "decoy": decoy, "resources": resources, "shop": shop, "value": value,
            "again": again, "shop_meta": shop_meta, "value_meta": value_meta, "ticks": ticks}


def _sensor_ticks(spec: ModelSpec, root: Path, resources: dict, instance, data) -> dict:
    """The model's sensor over its own dataset: the org's batches (already scored), then a new batch landing."""
    sensor = next(iter(build_model_defs(spec).sensors))
    with SandboxProcess(root / "aep") as sb:
        creds = sb.credentials
        sensor_resources = {"aep": AdobeAEP(client_id=creds.client_id, client_secret=creds.client_secret,
                                            org_id=creds.org_id, platform_url=sb.url, ims_url=sb.url,
                                            allow_production=True), "storage": resources["storage"]}

        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=sensor_resources)
            result = sensor(context)
            return result, (result.cursor if isinstance(result, dg.SensorResult) else None) or context.cursor

        first, cursor = tick(None)
        late = page_views(data.ecids[:20], data.today - timedelta(hours=1))  # after every training window
        landed = ingest_batch(client_for(sb), data.dataset["id"], [late], replace=None, timeout_s=60)["id"]
        second, cursor = tick(cursor)
        quiet, _ = tick(cursor)
    return {"sensor": (sensor.name, sensor.job_name), "first": first, "second": second, "quiet": quiet,
            "landed": landed}


@pytest.fixture
def client(org):
    with SandboxProcess(org["root"] / "aep") as sb:
        yield client_for(sb)


def test_the_whole_graph_runs_on_the_orgs_data_and_every_check_passes(org):
    assert org["shop"].success and org["value"].success and org["again"].success
    got = checks(org["shop"])
    assert set(got) >= set(BLOCKING) and all(got[name] for name in BLOCKING), got


def test_features_are_derived_from_the_data_when_the_yaml_lists_none(org):
    meta = org["shop_meta"]["feature_table"]
    derived = meta["feature_set"]["derived_event_types"]
    assert set(derived) == {"web.webpagedetails.pageViews", "commerce.productViews", "commerce.productListAdds",
                            "commerce.purchases"}
    assert meta["derived_features"] is True
    assert {"commerce_purchases", "commerce_purchases_90d", "minutes_since_commerce_purchases",
            "minutes_since_first_commerce_purchases"} <= set(meta["features"])


def test_scores_cover_every_eligible_profile_by_its_identity_value(org, client):
    meta = org["shop_meta"]["propensity_scores"]
    scores = pl.read_parquet(meta["dagster/uri"])
    assert {"profile_id", "propensity"} <= set(scores.columns)
    table = client.catalog.table_name(org["data"].dataset)
    scored_batches = ", ".join(f"'{b}'" for b in org["data"].batch_ids)  # not the one landed later for the sensor
    with_events = client.query.select(f"SELECT COUNT(DISTINCT identityMap['ECID'][0].id) AS n FROM {table} "
                                      f"WHERE _acp_system_metadata.acp_sourceBatchId IN ({scored_batches})")[0]["n"]
    assert scores.height == with_events == scores["profile_id"].n_unique()  # repeat buyers are eligible too
    assert set(scores["profile_id"]) <= set(org["data"].ecids)
    assert scores["propensity"].is_between(0, 1).all()


def test_the_source_dataset_keeps_exactly_the_batches_it_had(org, client):
    data = org["data"]  # the org's own batches, and the one the fixture landed to wake the sensor
    assert sorted(client.ingestion.active_batch_ids(data.dataset["id"])) == sorted([*data.batch_ids,
                                                                                   org["ticks"]["landed"]])
    assert OWNER_TAG not in client.catalog.get_dataset(data.dataset["id"])["tags"]


def test_scores_go_back_owned_with_the_models_namespace_as_primary_identity(org, client):
    ds = client.catalog.find_dataset("aep_assets shop Propensity Scores")
    assert ds["tags"][OWNER_TAG] == ["shop"] and ds["tags"]["unifiedProfile"] == ["enabled:true"]
    identity = client.schemas.descriptors(ds["schemaRef"]["id"])
    assert [(d["xdm:namespace"], d["xdm:isPrimary"]) for d in identity
            if d["@type"] == "xdm:descriptorIdentity"] == [("ECID", True)]
    written = org["shop_meta"]["aep_score_dataset"]["dagster/row_count"]
    assert written == org["shop_meta"]["propensity_scores"]["dagster/row_count"]


def test_a_prefix_twin_the_model_did_not_create_is_never_dropped(org, client):
    assert client.catalog.get_dataset(org["decoy"]["id"])["name"] == "aep_assets_shop_feature_table_000000000000"


def test_two_models_in_one_sandbox_keep_their_own_tables_flows_and_scores(org, client):
    owners = {}
    for ds in client.catalog.iter_datasets():
        owners.setdefault((ds.get("tags") or {}).get(OWNER_TAG, ["-"])[0], []).append(ds["name"])
    for model in ("shop", "shop_value"):
        assert any(n.startswith(f"aep_assets_{model}_feature_table_") for n in owners[model]), owners
        assert f"aep_assets {model} Propensity Scores" in owners[model]
    # shop ran again after shop_value: its table versions did not touch shop_value's
    value_table = org["value_meta"]["feature_table"]["dagster/table_name"]
    assert client.catalog.find_dataset(value_table) is not None
    flows = [f["name"] for f in client.flows.list_all("flows")]
    assert any(f.startswith("aep_assets shop training export ") for f in flows)
    assert any(f.startswith("aep_assets shop_value training export ") for f in flows)
    value_scores = pl.read_parquet(org["value_meta"]["propensity_scores"]["dagster/uri"])
    shop_scores = pl.read_parquet(org["shop_meta"]["propensity_scores"]["dagster/uri"])
    assert value_scores["model_version"][0] != shop_scores["model_version"][0]
    features = org["value_meta"]["feature_table"]["features"]
    assert {"purchases_value", "purchases_value_28d", "buysPerView_28d"} <= set(features)
    assert "minutes_since_first_cartAdds" not in features


def test_a_profile_dataset_adds_attributes_without_deciding_who_is_scored(org):
    # The CRM dataset holds 200 identities twice: still one row per profile, and no extra profiles.
    assert checks(org["value"])["one_row_per_profile"]
    meta = org["value_meta"]
    assert {"loyalty_points", "tier", "age"} <= set(meta["feature_table"]["features"])
    assert sorted(meta["feature_table"]["feature_set"]["derived_categories"]["tier"]) == sorted(TIERS)
    frame = pl.concat([pl.read_parquet(f) for f in Path(meta["training_export"]["dagster/uri"]).rglob("*.parquet")])
    assert frame["tier"].drop_nulls().is_in([0, 1, 2]).all() and frame["age"].drop_nulls().is_between(15, 80).all()
    value_scores = pl.read_parquet(meta["propensity_scores"]["dagster/uri"])
    shop_scores = pl.read_parquet(org["shop_meta"]["propensity_scores"]["dagster/uri"])
    assert value_scores.height == shop_scores.height


def test_a_dry_run_writes_nothing_to_the_profile_and_activates_nothing(org, client):
    spec = shop_spec("shop_dry", org["data"], write_back={"enabled": False})
    keys = {k.path[-1] for a in build_model_defs(spec).assets
            for k in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])}
    assert {"propensity_scores", "propensity_model"} <= keys
    assert not keys & {"aep_score_dataset", "propensity_audiences", "audience_activation", "xdm_schemas"}
    before = {d["id"] for d in client.catalog.iter_datasets()}
    with dg.instance_for_test() as instance:
        result = materialize(spec, org["resources"], instance)
        scores = metadata(instance, "shop_dry", "propensity_scores")
    assert result.success and scores["dagster/row_count"] > 0 and scores["write_back"].startswith("dry run")
    with SandboxProcess(org["root"] / "aep") as sb:
        after = client_for(sb)
        new = [d for d in after.catalog.iter_datasets() if d["id"] not in before]
        segments = after.session.json("GET", "/data/core/ups/segment/definitions")["segments"]
        flows = [f["name"] for f in after.flows.list_all("flows") if f["name"].startswith("aep_assets shop_dry ")]
    assert new and all("unifiedProfile" not in d["tags"] for d in new)  # feature tables only, none on Profile
    assert all(d["tags"][OWNER_TAG] == ["shop_dry"] for d in new)
    assert not [s for s in segments if "shop_dry" in s["name"]]
    assert flows and all(" export " in f for f in flows)  # dataset exports of its features; no destination


def test_replaying_a_dataset_the_project_did_not_create_is_refused(org, client):
    data = org["data"]
    with pytest.raises(NotOwned, match=r"Refusing to replay the batches of dataset 'Web SDK events'.*no "
                                       r"aep_assets/owner tag"):
        replace_dataset_rows(client, client.catalog.get_dataset(data.dataset["id"]),
                             [pa.table({"_id": ["x"]})], owner="shop")
    with pytest.raises(NotOwned, match="Refusing to write to dataset 'Web SDK events'.*write_back.dataset"):
        ensure_owned_dataset(client, "Web SDK events", data.schema_id, "shop", profile=True, description="")
    with pytest.raises(NotOwned, match="belongs to model 'shop', not to model 'shop_value'"):
        ensure_owned_dataset(client, "aep_assets shop Propensity Scores", data.schema_id, "shop_value",
                             profile=True, description="")
    assert set(data.batch_ids) <= set(client.ingestion.active_batch_ids(data.dataset["id"]))


def test_a_model_reading_the_wrong_identity_stops_before_it_trains(org):
    spec = shop_spec("shop_no_id", org["data"], events={"datasets": [org["data"].dataset["name"]],
                                                        "identity": "identityMap['Email'][0].id"})
    with dg.instance_for_test() as instance:
        result = materialize(spec, org["resources"], instance)
    evaluation = next(c for c in result.get_asset_check_evaluations() if c.check_name == "data_sufficient")
    assert not evaluation.passed
    problems = evaluation.metadata["problems"].value
    assert "events.identity \"identityMap['Email'][0].id\" is NULL on 100% of events" in problems
    assert "identityMap['ECID'][0].id" in problems  # the fix
    trained = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "propensity_model"]
    assert not trained


def test_a_users_yaml_folder_adds_models_to_the_code_location(tmp_path, monkeypatch):
    from aep_assets.definitions import build_definitions

    (tmp_path / "cdnow.yaml").write_text((Path(__file__).parents[1] / "examples/models/cdnow.yaml").read_text())
    monkeypatch.setenv("AEP_ASSETS_MODELS", str(tmp_path))
    defs = build_definitions()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"cdnow/propensity_scores", "cdnow/source_events", "cmle_demo/propensity_scores"} <= keys
    assert defs.resolve_job_def("cdnow").name == "cdnow"
    assert defs.resolve_sensor_def("cdnow_new_events_sensor").job_name == "cdnow_rescore"


def test_the_models_sensor_watches_its_own_source_datasets(org):
    ticks = org["ticks"]
    assert ticks["sensor"] == ("shop_new_events_sensor", "shop_rescore")
    assert "already reflected in the published scores" in ticks["first"].skip_reason.skip_message
    assert [r.tags["aep_assets/event_batches"] for r in ticks["second"].run_requests] == [ticks["landed"]]
    assert ticks["second"].run_requests[0].tags["aep_assets/model"] == "shop"
    assert "No new successful batches in 'Web SDK events'" in ticks["quiet"].skip_message


def test_the_models_runs_leave_only_its_current_tables(org, client):
    from aep_assets.pipeline.naming import Names
    from aep_assets.pipeline.ownership import owner_of

    names = Names("shop")
    owned = [d["name"] for d in client.catalog.iter_datasets() if owner_of(d) == "shop"]
    for stage in ("eda", "leakage_sample", "score_outcomes"):  # read once, then dropped
        assert not [n for n in owned if n.startswith(names.table_prefix(stage))], owned
    for stage in ("feature_table", "scoring_features"):  # the assets' current tables, one each
        assert len([n for n in owned if n.startswith(names.table_prefix(stage) + "_")]) == 1, owned
