"""sql/features.sql run by Query Service in the sandbox on hand-made events with known answers."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from aep_assets.pipeline.exports import export_dataset
from aep_assets.pipeline.features import build_feature_dataset, format_cutoff
from aep_assets.pipeline.ingest import replace_dataset_rows
from aep_assets.pipeline.platform import ensure_schemas
from aep_assets.storage import LocalStorage

from .conftest import client_for

T = datetime(2026, 2, 1, tzinfo=UTC)
H = timedelta(hours=1)
EVENTS = [  # (profile, eventType, time)
    ("A", "directMarketing.emailSent", T - 2 * H),
    ("A", "directMarketing.emailOpened", T - H),
    ("A", "web.formFilledOut", T + timedelta(days=3)),
    ("B", "web.formFilledOut", T - timedelta(days=1)),
    ("D", "directMarketing.emailSent", T + H),
    ("D", "web.formFilledOut", T + timedelta(days=20)),
    ("E", "commerce.productViews", T - timedelta(minutes=10)),
    ("E", "web.webinteraction.linkClicks", T),
    ("E", "decisioning.propositionDismiss", T - timedelta(days=2)),
]


@pytest.fixture(scope="module")
def features(sandbox, tmp_path_factory):
    client = client_for(sandbox)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    profiles_ds, _ = client.catalog.ensure_dataset("features test profiles", platform.schema_id("profile"),
                                                   profile=True)
    events_ds, _ = client.catalog.ensure_dataset("features test events", platform.schema_id("event"))
    ids = ["A", "B", "C", "D", "E"]
    replace_dataset_rows(client, profiles_ds["id"], [pa.table({
        "_id": ids, f"_{tenant}": pa.StructArray.from_arrays([pa.array(ids)], names=["userid"])})])
    replace_dataset_rows(client, events_ds["id"], [pa.table({
        "_id": [f"e{i}" for i in range(len(EVENTS))],
        "timestamp": pa.array([t for _, _, t in EVENTS], pa.timestamp("us", tz="UTC")),
        "eventType": [e for _, e, _ in EVENTS],
        f"_{tenant}": pa.StructArray.from_arrays([pa.array([p for p, _, _ in EVENTS])], names=["userid"]),
    })])
    params = {"tenant_id": tenant, "events_table": client.catalog.table_name(events_ds),
              "profiles_table": client.catalog.table_name(profiles_ds), "cutoff": format_cutoff(T),
              "horizon_days": 14}
    build = build_feature_dataset(client, name="feature_table", table_prefix="features_test_table", params=params,
                                  input_dataset_ids=[events_ds["id"], profiles_ds["id"]])
    storage = LocalStorage(sandbox.data_dir)  # its landing-zone/ is the sandbox DLZ
    export = export_dataset(client, storage, build.dataset["id"], flow_name="features test export", path="ft")
    frame = storage.read_parquet(export.keys)
    return {row["userId"]: row for row in frame.to_dicts()}, build, client, params, events_ds, profiles_ds


def test_one_row_per_profile_without_prior_converters(features):
    rows, *_ = features
    assert sorted(rows) == ["A", "C", "D", "E"]  # B converted before the cutoff


def test_counts_and_recency_use_only_events_before_the_cutoff(features):
    rows, *_ = features
    a, d, e = rows["A"], rows["D"], rows["E"]
    assert a["emailsReceived"] == 1 and a["emailsOpened"] == 1
    assert a["minutes_since_emailSent"] == pytest.approx(120.0)
    assert a["minutes_since_emailOpened"] == pytest.approx(60.0)
    assert d["emailsReceived"] == 0 and d["minutes_since_emailSent"] is None  # sent after T
    assert e["productsViewed"] == 1 and e["minutes_since_productView"] == pytest.approx(10.0)
    assert e["webLinkClicks"] == 0 and e["minutes_since_linkClick"] is None  # at T is not before T


def test_never_happened_is_null_not_zero(features):
    rows, *_ = features
    c = rows["C"]
    assert c["emailsReceived"] == 0
    assert all(c[k] is None for k in c if k.startswith("minutes_since_"))


def test_proposition_dismiss_recency_is_not_always_null(features):
    rows, *_ = features
    assert rows["E"]["propositionDismissed"] == 1
    assert rows["E"]["minutes_since_propositionDismiss"] == pytest.approx(2 * 24 * 60.0)


def test_label_is_a_conversion_inside_the_horizon(features):
    rows, *_ = features
    assert rows["A"]["subscriptionOccurred"] == 1
    assert rows["D"]["subscriptionOccurred"] == 0  # day 20 is past the 14-day horizon
    assert rows["C"]["subscriptionOccurred"] == 0


def test_rebuilding_unchanged_inputs_reuses_the_table(features):
    _, build, client, params, events_ds, profiles_ds = features
    again = build_feature_dataset(client, name="feature_table", table_prefix="features_test_table", params=params,
                                  input_dataset_ids=[events_ds["id"], profiles_ds["id"]])
    assert again.reused and again.dataset["id"] == build.dataset["id"]
    names = [d["name"] for d in client.catalog.iter_datasets(property="name~^features_test_table_")]
    assert names == [build.table]
