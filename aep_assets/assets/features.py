"""Query Service exploration, the feature table, and its export to storage."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from ..constants import (
    EDA_EXPORT_FLOW,
    EDA_EXPORT_POINTER,
    EDA_TABLE_PREFIX,
    FEATURE_TABLE_PREFIX,
    FEATURES,
    TRAINING_EXPORT_FLOW,
    TRAINING_EXPORT_POINTER,
)
from ..ml.design import TemporalSplit
from ..ml.features import EVENT_FEATURES, LABEL
from ..pipeline.exports import export_dataset
from ..pipeline.features import build_feature_dataset, feature_params, parse_time
from ..pipeline.platform import EVENT_DATASET, require_dataset
from ..resources import AEPResource, StorageResource
from .metadata import column_schema, md_table, sql_md, xdm_column_schema

# Which raw XDM fields each column reads (column lineage).
EVENT_FIELDS = ["eventType", "timestamp", "_tenant.userid"]
RAW_FIELDS = {name: EVENT_FIELDS for name in (*EVENT_FEATURES, LABEL)}
RAW_FIELDS.update({"userId": ["_tenant.userid"], "loyaltyTierRank": ["loyalty.tier"],
                   "loyaltyPoints": ["loyalty.points"], "age": ["person.birthYear"],
                   "tenureDays": ["loyalty.joinDate"]})
PROFILE_COLUMNS = {"userId", "loyaltyTierRank", "loyaltyPoints", "age", "tenureDays"}


class FeatureConfig(dg.Config):
    train_cutoff: str = Field(default="", description="T1, the training rows' prediction time, as an ISO date or "
                                                      "datetime (UTC). Default: today minus train_cutoff_days_ago.")
    test_cutoff: str = Field(default="", description="T2, the temporal holdout's prediction time (at least "
                                                     "horizon_days after T1). Default: today minus "
                                                     "test_cutoff_days_ago.")
    train_cutoff_days_ago: int = Field(default=28, description="Default T1, in days before today.")
    test_cutoff_days_ago: int = Field(default=14, description="Default T2, in days before today.")
    horizon_days: int = Field(default=14, description="Label horizon H: a conversion in (T, T+H] is a positive.")
    adobe_compatible: bool = Field(default=False, description="Build the training rows the way Adobe's notebooks "
                                   "do (leaky: positives at the conversion event, negatives at a random event, "
                                   "whole-history label), to compare with the honest design. The test rows stay "
                                   "the temporal holdout, and the no_leakage check will fail.")

    def split(self) -> TemporalSplit:
        default = TemporalSplit.days_ago(self.train_cutoff_days_ago, self.test_cutoff_days_ago, self.horizon_days)
        return TemporalSplit(
            parse_time("train_cutoff", self.train_cutoff) if self.train_cutoff else default.train_cutoff,
            parse_time("test_cutoff", self.test_cutoff) if self.test_cutoff else default.test_cutoff,
            self.horizon_days)


def _lineage(tenant: str, columns: list[str]) -> dg.TableColumnLineage:
    deps = {}
    for col in columns:
        fields = [f.replace("_tenant", f"_{tenant}") for f in RAW_FIELDS.get(col, [])]
        source = "synthetic_profiles" if col in PROFILE_COLUMNS else "synthetic_events"
        deps[col] = [dg.TableColumnDep(asset_key=dg.AssetKey(source), column_name=f) for f in fields]
    return dg.TableColumnLineage(deps_by_column={k: v for k, v in deps.items() if v})


@dg.asset(group_name=FEATURES, deps=["synthetic_events"], kinds={"adobe", "sql"})
def eda_report(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """Query Service exploration of the events: volumes, the funnel, and how each event type relates to
    conversion (share of profiles converting, and the correlation of per-profile counts with conversion)."""
    client, store = aep.client(), storage.get()
    events = require_dataset(client, EVENT_DATASET, "synthetic_events")
    build = build_feature_dataset(client, name="eda_report", table_prefix=EDA_TABLE_PREFIX,
                                  params={"tenant_id": client.schemas.tenant_id(),
                                          "events_table": client.catalog.table_name(events)},
                                  input_dataset_ids=[events["id"]])
    export = export_dataset(client, store, build.dataset["id"], flow_name=EDA_EXPORT_FLOW, path="aep_assets/eda")
    store.write_bytes(EDA_EXPORT_POINTER, json.dumps({"keys": export.keys}).encode())
    report = store.read_parquet(export.keys).sort("events", descending=True)
    total = int(report["events"].sum())
    conversions = report.filter(report["eventType"] == "web.formFilledOut")
    return dg.MaterializeResult(metadata={
        "total_events": total, "event_types": report.height,
        "converted_profiles": int(conversions["profiles"].sum()) if conversions.height else 0,
        "funnel": md_table(report.drop("first_seen", "last_seen").with_columns(
            report["conversion_rate_with_event"].round(3), report["corr_count_with_conversion"].round(3)), rows=20),
        "first_event": str(report["first_seen"].min()), "last_event": str(report["last_seen"].max()),
        "dagster/table_name": build.table, "sql": sql_md(build.sql),
        "query_id": build.query["id"] if build.query else "reused",
    })


@dg.asset(group_name=FEATURES, deps=["synthetic_events", "synthetic_profiles"], kinds={"adobe", "sql"})
def feature_table(context: dg.AssetExecutionContext, config: FeatureConfig, aep: AEPResource) -> dg.MaterializeResult:
    """Model features per profile from events strictly before the cutoff, with the label "converted in
    (T, T+H]", built by a Query Service CTAS from sql/feature_table.sql. Split 'train' is at T1 and split
    'test' (the temporal holdout) at T2, with label windows that never overlap. Profiles converted before
    their cutoff are left out, so there is one row per profile per split."""
    client = aep.client()
    design = config.split()
    design.require_observed()
    name = "feature_table_adobe" if config.adobe_compatible else "feature_table"
    cutoffs = {"test": design.test_cutoff} if config.adobe_compatible else design.cutoffs
    params, inputs = feature_params(client, cutoffs, design.horizon_days)
    build = build_feature_dataset(client, name=name, table_prefix=FEATURE_TABLE_PREFIX,
                                  params=params, input_dataset_ids=inputs)
    if build.dropped:
        context.log.info("dropped earlier feature tables %s", build.dropped)
    schema = client.schemas.get_schema(build.dataset["schemaRef"]["id"], full=True)["properties"]
    return dg.MaterializeResult(metadata={
        "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
        "train_cutoff": "adobe rows (one event per profile)" if config.adobe_compatible
        else design.train_cutoff.isoformat(),
        "test_cutoff": design.test_cutoff.isoformat(), "horizon_days": design.horizon_days,
        "design": "adobe_compatible" if config.adobe_compatible else "temporal",
        "dagster/row_count": int(build.query["rowCount"]) if build.query else
        int(client.catalog.get_batch(build.dataset["lastBatchId"])["metrics"].get("outputRecordCount", 0)),
        "query_id": build.query["id"] if build.query else "reused",
        "sql": sql_md(build.sql), "dagster/column_lineage": _lineage(params["tenant_id"], list(schema)),
        "dropped_versions": dg.MetadataValue.json(build.dropped),
        "dagster/column_schema": xdm_column_schema(schema),
    })


@dg.asset(group_name=FEATURES, deps=["feature_table"], kinds={"adobe", "parquet"},
          check_specs=[dg.AssetCheckSpec("one_row_per_profile", asset="training_export", blocking=True,
                                         description="Each profile appears at most once per split.")])
def training_export(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """The feature table exported by an AEP dataset export flow as gzip Parquet into storage, in AEP's
    {path}/{datasetId}/exportTime=YYYYMMDDHHMM/ layout."""
    client, store = aep.client(), storage.get()
    ds = next(iter(client.catalog.iter_datasets(property=f"name~^{FEATURE_TABLE_PREFIX}_", orderBy="desc:created")),
              None)
    if ds is None:
        raise LookupError("No feature table in AEP; materialise feature_table first.")
    export = export_dataset(client, store, ds["id"], flow_name=TRAINING_EXPORT_FLOW, path="aep_assets/training")
    frame = store.read_parquet(export.keys)
    test = frame.filter(pl.col("split") == "test")
    if test.is_empty():
        raise ValueError(f"The feature table {ds['name']} has no 'test' rows; rebuild feature_table.")
    store.write_bytes(TRAINING_EXPORT_POINTER, json.dumps({
        "dataset_id": ds["id"], "keys": export.keys, "run_id": export.run_id,
        "test_cutoff": test["cutoff"][0].isoformat(), "horizon_days": int(test["horizonDays"][0])}).encode())
    per_split = frame.group_by("split").agg(pl.len().alias("rows"), pl.col("userId").n_unique().alias("profiles"),
                                            pl.col(LABEL).mean().alias("positive_rate")).sort("split")
    duplicates = int((per_split["rows"] - per_split["profiles"]).sum())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height, "dagster/uri": store.uri(export.folder), "dataset_id": ds["id"],
            "flow_id": export.flow["id"], "run_id": export.run_id, "files": dg.MetadataValue.json(export.keys),
            "splits": md_table(per_split), "dagster/column_schema": column_schema(frame), "preview": md_table(frame),
        },
        check_results=[dg.AssetCheckResult(check_name="one_row_per_profile", passed=duplicates == 0,
                                           metadata={"duplicate_rows": duplicates, "rows": frame.height})],
    )
