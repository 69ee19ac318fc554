"""CTAS tables: a failed one leaves no table behind, a transient one is dropped once read, and only the model's
own tables are ever dropped."""

import pyarrow as pa
import pytest

from aep_assets.aep.errors import AEPStatusError
from aep_assets.pipeline.feature_builds import build_feature_dataset, transient_feature_dataset
from aep_assets.pipeline.ownership import OWNER_TAG, owner_of
from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for, replace_rows


def _source(client) -> dict:
    platform = ensure_schemas(client)
    ds, _ = client.catalog.ensure_dataset("cleanup events", platform.schema_id("event"))
    replace_rows(client, ds["id"], [pa.table({
        "_id": ["e1", "e2"], "eventType": ["a", "b"],
        "timestamp": pa.array([0, 60_000_000], pa.timestamp("us", tz="UTC")),
        f"_{platform.tenant_id}": pa.StructArray.from_arrays([pa.array(["u1", "u2"])], names=["userid"])})])
    return client.catalog.get_dataset(ds["id"])


def _build(client, source: dict, prefix: str = "aep_assets_m_tmp", **kwargs):
    return build_feature_dataset(client, name="leakage_sample", owner="m", table_prefix=prefix,
                                 params={"tenant_id": client.schemas.tenant_id(), "user_ids": "'u1'"},
                                 fragments={"source_events": f"source_events AS (SELECT _id AS profile_id, "
                                                             f"timestamp FROM {client.catalog.table_name(source)})"},
                                 input_dataset_ids=[source["id"]], **kwargs)


def _tables(client, prefix: str) -> list[dict]:
    return [d for d in client.catalog.iter_datasets() if d["name"].startswith(prefix)]


def test_a_ctas_whose_table_cannot_be_marked_leaves_no_table(make_sandbox):
    # The table is made, then every attempt to tag it fails: the run fails, and the table goes with it.
    source = _source(client_for(make_sandbox("org")))
    faulty = make_sandbox("org", faults=[{"status": 500, "path": "/data/foundation/catalog/dataSets/",
                                          "method": "PATCH"}])
    client = client_for(faulty, max_retries=1)  # every attempt fails: retrying longer proves nothing more
    with pytest.raises(AEPStatusError):
        _build(client, source)
    assert _tables(client, "aep_assets_m_tmp") == []


def test_a_transient_table_is_dropped_once_read_even_when_the_reading_fails(make_sandbox):
    client = client_for(make_sandbox())
    source = _source(client)
    with pytest.raises(RuntimeError, match="the export broke"):
        with transient_feature_dataset(client, name="leakage_sample", owner="m", table_prefix="aep_assets_m_tr",
                                       params={"tenant_id": client.schemas.tenant_id(), "user_ids": "'u1'"},
                                       fragments={"source_events": "source_events AS (SELECT _id AS profile_id "
                                                                   f"FROM {client.catalog.table_name(source)})"},
                                       input_dataset_ids=[source["id"]]) as build:
            assert owner_of(client.catalog.get_dataset(build.dataset["id"])) == "m"
            raise RuntimeError("the export broke")
    assert _tables(client, "aep_assets_m_tr") == []


def test_superseded_tables_go_and_a_twin_the_model_did_not_make_stays(make_sandbox):
    client = client_for(make_sandbox())
    source = _source(client)
    twin, _ = client.catalog.ensure_dataset("aep_assets_m_keep_000000000000", source["schemaRef"]["id"])
    first = _build(client, source, prefix="aep_assets_m_keep")
    replace_rows(client, source["id"], [pa.table({
        "_id": ["e3"], "eventType": ["c"], "timestamp": pa.array([0], pa.timestamp("us", tz="UTC"))})])
    second = _build(client, source, prefix="aep_assets_m_keep")
    names = {d["name"] for d in _tables(client, "aep_assets_m_keep")}
    assert second.table in names and first.table not in names and twin["name"] in names
    assert OWNER_TAG not in (client.catalog.get_dataset(twin["id"]).get("tags") or {})
