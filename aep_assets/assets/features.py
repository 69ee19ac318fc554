"""Query Service exploration, the feature table, and its export to storage."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
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
from ..ml.features import FEATURES as FEATURE_COLUMNS
from ..ml.features import LABEL
from ..pipeline.exports import export_dataset
from ..pipeline.features import build_feature_dataset, feature_params, parse_time
from ..pipeline.platform import EVENT_DATASET, require_dataset
from ..resources import AEPResource, StorageResource
from .metadata import column_schema, md_table, sql_md, xdm_column_schema

# Which raw XDM fields each feature reads (column lineage).
RAW_FIELDS = {name: ["eventType", "timestamp", "_tenant.userid"] for name in FEATURE_COLUMNS}
RAW_FIELDS[LABEL] = ["eventType", "timestamp", "_tenant.userid"]
RAW_FIELDS["userId"] = ["_tenant.userid"]


class FeatureConfig(dg.Config):
    cutoff: str = Field(default="", description="Prediction time T as an ISO date or datetime (UTC). Features "
                                                "read only events before T. Default: today minus cutoff_days_ago.")
    cutoff_days_ago: int = Field(default=28, description="Default T, in days before today.")
    horizon_days: int = Field(default=14, description="Label horizon H: a conversion in (T, T+H] is a positive.")

    def cutoff_time(self) -> datetime:
        if self.cutoff:
            return parse_time("cutoff", self.cutoff)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=self.cutoff_days_ago)


def _lineage(tenant: str, columns: list[str]) -> dg.TableColumnLineage:
    deps = {}
    for col in columns:
        fields = [f.replace("_tenant", f"_{tenant}") for f in RAW_FIELDS.get(col, [])]
        source = "synthetic_profiles" if col == "userId" else "synthetic_events"
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
    """Adobe's 14 CMLE features per profile from events before the cutoff T, with the label "converted in
    (T, T+H]", built by a Query Service CTAS from sql/feature_table.sql. Profiles converted before T are
    left out, and there is exactly one row per profile."""
    client = aep.client()
    cutoff = config.cutoff_time()
    params, inputs = feature_params(client, cutoff, config.horizon_days)
    build = build_feature_dataset(client, name="feature_table", table_prefix=FEATURE_TABLE_PREFIX,
                                  params=params, input_dataset_ids=inputs)
    if build.dropped:
        context.log.info("dropped earlier feature tables %s", build.dropped)
    columns = ["userId", "cutoff", *FEATURE_COLUMNS, "convertedBeforeCutoff", LABEL]
    return dg.MaterializeResult(metadata={
        "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
        "cutoff": cutoff.isoformat(), "horizon_days": config.horizon_days,
        "dagster/row_count": int(build.query["rowCount"]) if build.query else
        int(client.catalog.get_batch(build.dataset["lastBatchId"])["metrics"].get("outputRecordCount", 0)),
        "query_id": build.query["id"] if build.query else "reused",
        "sql": sql_md(build.sql), "dagster/column_lineage": _lineage(params["tenant_id"], columns),
        "dropped_versions": dg.MetadataValue.json(build.dropped),
        "dagster/column_schema": xdm_column_schema(
            client.schemas.get_schema(build.dataset["schemaRef"]["id"], full=True)["properties"]),
    })


@dg.asset(group_name=FEATURES, deps=["feature_table"], kinds={"adobe", "parquet"},
          check_specs=[dg.AssetCheckSpec("one_row_per_profile", asset="training_export", blocking=True)])
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
    store.write_bytes(TRAINING_EXPORT_POINTER, json.dumps({"dataset_id": ds["id"], "keys": export.keys,
                                                           "run_id": export.run_id}).encode())
    duplicates = frame.height - frame["userId"].n_unique()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height, "dagster/uri": store.uri(export.folder), "dataset_id": ds["id"],
            "flow_id": export.flow["id"], "run_id": export.run_id, "files": dg.MetadataValue.json(export.keys),
            "positive_rate": float(frame[LABEL].mean()), "dagster/column_schema": column_schema(frame),
            "preview": md_table(frame),
        },
        check_results=[dg.AssetCheckResult(check_name="one_row_per_profile", passed=duplicates == 0,
                                           metadata={"duplicate_rows": duplicates, "rows": frame.height})],
    )
