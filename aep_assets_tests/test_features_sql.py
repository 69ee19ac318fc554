"""sql/features.sql run by Query Service in the sandbox on hand-made events with known answers."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa
import pytest

from aep_assets.ml.feature_set import ID, LABEL, reference_features
from aep_assets.pipeline.exports import export_dataset
from aep_assets.pipeline.feature_builds import build_feature_dataset, cutoff_values, feature_fragments
from aep_assets.pipeline.feature_sql import scope_in_batches
from aep_assets.pipeline.ingest import append_dataset_rows
from aep_assets.pipeline.schemas import ensure_schemas
from aep_assets.pipeline.sources import SourceDataset, Sources
from aep_assets.storage import LocalStorage

from .conftest import TEST_OWNER, client_for, replace_rows
from .demo import feature_set, flagged

FS = feature_set()

T = datetime(2026, 2, 1, tzinfo=UTC)
T2 = T + timedelta(days=14)  # the test cutoff: its label window (T2, T2 + 14d] starts where T's ends
H = timedelta(hours=1)
DAY = timedelta(days=1)
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
    ("F", "directMarketing.emailOpened", T - 10 * DAY),
    ("F", "directMarketing.emailOpened", T - 3 * DAY),
    ("F", "directMarketing.emailSent", T - 3 * DAY - H),
    ("F", "directMarketing.emailClicked", T - 40 * DAY),
]
IDS = ["A", "B", "C", "D", "E", "F"]
TIERS = ["gold", "member", "silver", "diamond", "platinum", "member"]
BIRTH_YEARS = [1990, 1980, 1970, 2000, 1960, 1985]
JOINED = [T - 100 * DAY, T - DAY, T - 10 * DAY, T - 1000 * DAY, T - 5 * DAY, T - 50 * DAY]


@pytest.fixture(scope="module")
def features(sandbox, tmp_path_factory):
    client = client_for(sandbox)
    platform = ensure_schemas(client)
    tenant = platform.tenant_id
    profiles_ds, _ = client.catalog.ensure_dataset("features test profiles", platform.schema_id("profile"),
                                                   profile=True)
    events_ds, _ = client.catalog.ensure_dataset("features test events", platform.schema_id("event"))
    replace_rows(client, profiles_ds["id"], [pa.table({
        "_id": IDS, f"_{tenant}": pa.StructArray.from_arrays([pa.array(IDS)], names=["userid"]),
        "person": pa.StructArray.from_arrays([pa.array(BIRTH_YEARS, pa.int64())], names=["birthYear"]),
        "loyalty": pa.StructArray.from_arrays(
            [pa.array(TIERS), pa.array([100.0 * i for i in range(len(IDS))]),
             pa.array(JOINED, pa.timestamp("us", tz="UTC"))], names=["tier", "points", "joinDate"]),
    })])
    replace_rows(client, events_ds["id"], [_events_table(tenant, EVENTS)])
    sources = Sources((SourceDataset.of(client.catalog.get_dataset(events_ds["id"])),),
                      SourceDataset.of(client.catalog.get_dataset(profiles_ds["id"])))
    params = {"tenant_id": tenant, "events_table": client.catalog.table_name(events_ds),
              "cutoffs": cutoff_values({"train": T, "test": T2}), "horizon_days": 14}
    build = _build(client, "feature_table", "features_test_table", params, sources)
    storage = LocalStorage(sandbox.data_dir)  # its landing-zone/ is the sandbox DLZ
    export = export_dataset(client, storage, build.dataset["id"], flow_name="features test export", path="ft")
    frame = storage.read_parquet(export.keys)
    rows = {row[ID]: row for row in frame.filter(pl.col("split") == "train").to_dicts()}
    return rows, build, client, params, sources, frame


def _build(client, name, prefix, params, sources, scoped=False):
    return build_feature_dataset(client, name=name, owner=TEST_OWNER, table_prefix=prefix, params=params,
                                 fragments=feature_fragments(FS, sources, scoped),
                                 input_dataset_ids=sources.dataset_ids)


def _events_table(tenant, events):
    return pa.table({
        "_id": [f"{p}-{e}-{t.isoformat()}" for p, e, t in events],
        "timestamp": pa.array([t for _, _, t in events], pa.timestamp("us", tz="UTC")),
        "eventType": [e for _, e, _ in events],
        f"_{tenant}": pa.StructArray.from_arrays([pa.array([p for p, _, _ in events])], names=["userid"]),
    })


def _test_row(frame, profile):
    return frame.filter((pl.col("split") == "test") & (pl.col(ID) == profile)).row(0, named=True)


def test_one_row_per_profile_with_events_before_t_and_without_prior_goal(features):
    rows, *_, frame = features
    # B converted before T; C has no events; D's first event comes after T.
    assert sorted(rows) == ["A", "E", "F"]
    test_rows = frame.filter(pl.col("split") == "test")
    assert sorted(test_rows[ID]) == ["D", "E", "F"]  # A converted at T + 3 days, before T2
    assert test_rows["cutoff"].unique().to_list() == [T2]


def test_the_test_split_reads_up_to_its_own_cutoff(features):
    *_, frame = features
    d = _test_row(frame, "D")
    assert d["emailsReceived"] == 1  # sent at T + 1h: after T, before T2
    assert d[LABEL] == 1  # converted at T + 20d, inside (T2, T2 + 14d]


def test_windowed_counts_and_ratios(features):
    rows, *_ = features
    f = rows["F"]
    assert (f["emailsOpened"], f["emailsOpened_7d"], f["emailsOpened_28d"]) == (2, 1, 2)
    assert (f["emailsClicked"], f["emailsClicked_28d"]) == (1, 0)
    assert f["emailOpenRate_28d"] == pytest.approx(2.0) and f["emailClickRate_28d"] == pytest.approx(0.0)
    assert rows["E"]["emailOpenRate_28d"] is None  # nothing received: no rate, not 0


def test_profile_attributes(features):
    rows, *_, frame = features
    a = rows["A"]
    assert (a["loyaltyTierRank"], a["age"], a["tenureDays"], a["loyaltyPoints"]) == (2, 36, 100, 0.0)
    assert _test_row(frame, "D")["loyaltyTierRank"] == 4


def test_sql_matches_the_python_reference_on_every_event_feature(features):
    *_, frame = features
    events = flagged(pl.DataFrame({
        ID: [p for p, _, _ in EVENTS], "eventType": [e for _, e, _ in EVENTS],
        "timestamp": pl.Series([t for _, _, t in EVENTS], dtype=pl.Datetime("us", "UTC"))}), FS)
    assert len(FS.names) == 45
    for cutoff in (T, T2):
        sql = frame.filter(pl.col("cutoff") == cutoff).sort(ID)
        ref = pl.DataFrame({ID: sql[ID]}).join(reference_features(events, cutoff, FS), on=ID, how="left")
        for name in FS.event_names:
            want = ref[name].to_list()
            if name not in FS.nullable:
                want = [w or 0 for w in want]
            assert sql[name].to_list() == pytest.approx(want, nan_ok=True), (cutoff, name)


def test_counts_and_recency_use_only_events_before_the_cutoff(features):
    rows, *_ = features
    a, e = rows["A"], rows["E"]
    assert a["emailsReceived"] == 1 and a["emailsOpened"] == 1
    assert a["minutes_since_emailSent"] == pytest.approx(120.0)
    assert a["minutes_since_emailOpened"] == pytest.approx(60.0)
    assert "D" not in rows  # D's only event before T2 was sent after T
    assert e["productsViewed"] == 1 and e["minutes_since_productView"] == pytest.approx(10.0)
    assert e["webLinkClicks"] == 0 and e["minutes_since_linkClick"] is None  # at T is not before T


def test_never_happened_is_null_not_zero(features):
    rows, *_ = features
    e = rows["E"]
    assert e["emailsReceived"] == 0 and e["purchases"] == 0
    assert all(e[k] is None for k in e if k.startswith("minutes_since_email"))
    assert e["minutes_since_purchase"] is None


def test_proposition_dismiss_recency_is_not_always_null(features):
    rows, *_ = features
    assert rows["E"]["propositionDismissed"] == 1
    assert rows["E"]["minutes_since_propositionDismiss"] == pytest.approx(2 * 24 * 60.0)


def test_label_is_a_conversion_inside_the_horizon(features):
    rows, *_ = features
    assert rows["A"][LABEL] == 1
    assert rows["E"][LABEL] == 0 and rows["F"][LABEL] == 0


def test_rebuilding_unchanged_inputs_reuses_the_table(features):
    _, build, client, params, sources, _ = features
    again = _build(client, "feature_table", "features_test_table", params, sources)
    assert again.reused and again.dataset["id"] == build.dataset["id"]
    names = [d["name"] for d in client.catalog.iter_datasets(property="name~^features_test_table_")]
    assert names == [build.table]



def test_adobe_compatible_rows_reproduce_the_notebooks_design(features, sandbox):
    _, _, client, params, sources, _ = features
    build = _build(client, "feature_table_adobe", "features_test_adobe",
                   {**params, "cutoffs": cutoff_values({"test": T2})}, sources)
    storage = LocalStorage(sandbox.data_dir)
    export = export_dataset(client, storage, build.dataset["id"], flow_name="features test adobe", path="fta")
    frame = storage.read_parquet(export.keys)
    train = {r[ID]: r for r in frame.filter(pl.col("split") == "train").to_dicts()}
    # Converters are sampled at their conversion event, whenever it happened; C has no event row at all.
    assert {u: r[LABEL] for u, r in train.items()} == {"A": 1, "B": 1, "D": 1, "E": 0, "F": 0}
    assert train["A"]["cutoff"] == T + timedelta(days=3) and train["A"]["emailsReceived"] == 1
    assert train["A"]["minutes_since_emailSent"] == pytest.approx(3 * 24 * 60 + 120)
    assert sorted(frame.filter(pl.col("split") == "test")[ID]) == ["D", "E", "F"]


def test_a_scoped_build_gives_the_profiles_of_the_named_batches_their_whole_history(features, sandbox):
    """An incremental rescore's features: only the profiles with rows in the new batches, each from all its events,
    so the same rows as an unscoped build's for those profiles."""
    _, _, client, params, sources, _ = features
    tenant = params["tenant_id"]
    events_ds, _ = client.catalog.ensure_dataset("features test scoped events",
                                                 ensure_schemas(client).schema_id("event"))
    replace_rows(client, events_ds["id"], [_events_table(tenant, EVENTS)])
    new = append_dataset_rows(client, client.catalog.get_dataset(events_ds["id"]),
                              [_events_table(tenant, [("F", "directMarketing.emailOpened", T - H)])], owner=TEST_OWNER)
    scoped_sources = Sources((SourceDataset.of(client.catalog.get_dataset(events_ds["id"])),), sources.profiles)
    table_params = {**params, "events_table": scoped_sources.event_tables[0]}
    storage = LocalStorage(sandbox.data_dir)

    def rows(build, path):
        frame = storage.read_parquet(export_dataset(client, storage, build.dataset["id"], flow_name=f"scoped {path}",
                                                    path=path).keys)
        return frame.sort(ID, "cutoff")

    everyone = rows(_build(client, "feature_table", "features_test_unscoped", table_params, scoped_sources), "u")
    scoped = rows(_build(client, "feature_table", "features_test_scoped",
                         {**table_params, "scope": scope_in_batches([new["id"]])}, scoped_sources, scoped=True), "s")
    assert scoped[ID].unique().to_list() == ["F"]
    assert scoped.to_dicts() == everyone.filter(pl.col(ID) == "F").to_dicts()
    assert scoped.filter(pl.col("split") == "train")["emailsOpened"].to_list() == [3]  # both batches' opens
