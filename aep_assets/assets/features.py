"""Query Service exploration, the feature table, and its export to storage."""

import json

import dagster as dg
import polars as pl
from pydantic import Field

from ..ml.design import TemporalSplit
from ..ml.feature_set import ID, LABEL, FeatureSet
from ..pipeline.exports import export_dataset
from ..pipeline.features import (
    build_feature_dataset,
    feature_fragments,
    feature_params,
    resolve_feature_set,
    resolve_sources,
)
from ..pipeline.handoff import FeatureTable, TrainingExport
from ..pipeline.spec import TENANT, ModelSpec, parse_time
from ..pipeline.sufficiency import check_source, check_training_rows
from ..resources import AEPResource, StorageResource
from .instance import FEATURES, Instance
from .metadata import column_schema, md_table, sql_md, xdm_column_schema


class FeatureConfig(dg.Config):
    train_cutoff: str = Field(default="", description="T1, the training rows' prediction time, as an ISO date or "
                                                      "datetime (UTC). Default: the model's cutoffs.train.")
    test_cutoff: str = Field(default="", description="T2, the temporal holdout's prediction time (at least "
                                                     "outcome_days after T1). Default: the model's cutoffs.test.")
    horizon_days: int = Field(default=0, description="Outcome window H: a goal in (T, T+H] is a positive. "
                                                     "0: the model's goal.outcome_days.")
    adobe_compatible: bool = Field(default=False, description="CMLE demo only: build the training rows the way "
                                   "Adobe's notebooks do (leaky), to compare with the honest design. The test rows "
                                   "stay the temporal holdout, and the no_leakage check will fail.")

    def split(self, spec: ModelSpec) -> TemporalSplit:
        train, test = spec.cutoff_times()
        return TemporalSplit(parse_time("train_cutoff", self.train_cutoff) if self.train_cutoff else train,
                             parse_time("test_cutoff", self.test_cutoff) if self.test_cutoff else test,
                             self.horizon_days or spec.goal.outcome_days)


def _lineage(m: Instance, fs: FeatureSet, columns: list[str], tenant: str) -> dg.TableColumnLineage:
    """Which source fields each column reads: the events' identity, time and conditions, or a profile field."""
    events = ["timestamp", "eventType", fs.identity.replace(TENANT, tenant)]
    by_name = {a.name: a.field.replace(TENANT, tenant) for a in fs.attributes}
    deps = {}
    for col in columns:
        if col in by_name:
            deps[col] = [dg.TableColumnDep(asset_key=m.sources[-1], column_name=by_name[col])]
        elif col in (*fs.event_names, LABEL, ID):
            deps[col] = [dg.TableColumnDep(asset_key=m.event_source, column_name=f) for f in events]
    return dg.TableColumnLineage(deps_by_column=deps)


def build(m: Instance) -> list:
    names, spec = m.names, m.spec

    @dg.asset(key=m.key("eda_report"), group_name=m.group(FEATURES), deps=[m.event_source], kinds={"adobe", "sql"})
    def eda_report(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """Query Service exploration of the model's events: volumes, the funnel, and how each event type
        relates to the goal (share of profiles reaching it, and the correlation of per-profile counts with it)."""
        client, store = aep.client(), storage.get()
        sources = resolve_sources(client, spec, names)
        fs = FeatureSet(identity=spec.events.identity, goal=spec.goal.condition, events=())
        build = build_feature_dataset(client, name="eda_report", owner=m.name, table_prefix=names.table_prefix("eda"),
                                      params={"tenant_id": client.schemas.tenant_id()},
                                      fragments=feature_fragments(fs, sources),
                                      input_dataset_ids=[ds["id"] for ds in sources.events])
        export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("eda export"),
                                path=names.export_path("eda"))
        report = store.read_parquet(export.keys).sort("events", descending=True)
        return dg.MaterializeResult(metadata={
            "total_events": int(report["events"].sum()), "event_types": report.height,
            "funnel": md_table(report.drop("first_seen", "last_seen").with_columns(
                report["conversion_rate_with_event"].round(3), report["corr_count_with_conversion"].round(3)),
                rows=20),
            "first_event": str(report["first_seen"].min()), "last_event": str(report["last_seen"].max()),
            "dagster/table_name": build.table, "sql": sql_md(build.sql),
            "query_id": build.query["id"] if build.query else "reused",
        })

    @dg.asset(key=m.key("feature_table"), group_name=m.group(FEATURES), deps=m.sources, kinds={"adobe", "sql"},
              check_specs=[dg.AssetCheckSpec("data_sufficient", asset=m.key("feature_table"), blocking=True,
                                             description="The sources can train this model: history long enough "
                                                         "for the lookback and outcome window, recent events before "
                                                         "each cutoff, identities mostly present, every feature "
                                                         "event occurring.")])
    def feature_table(context: dg.AssetExecutionContext, config: FeatureConfig, aep: AEPResource,
                      storage: StorageResource) -> dg.MaterializeResult:
        """Model features per profile from events strictly before the cutoff, with the label "the goal occurred
        in (T, T+H]", built by a Query Service CTAS from sql/feature_table.sql and the SQL generated from the
        model's definition. Split 'train' is at T1 and split 'test' (the temporal holdout) at T2, with label
        windows that never overlap; one row per eligible profile per split."""
        client, store = aep.client(), storage.get()
        design = config.split(spec)
        design.require_observed()
        sources = resolve_sources(client, spec, names)
        fs = resolve_feature_set(client, spec, sources, design.train_cutoff)
        store.write_bytes(names.feature_set, json.dumps(fs.to_json(), indent=1).encode())
        sufficiency = check_source(client, spec, fs, sources, design)
        adobe = config.adobe_compatible
        if adobe and not spec.simulated:
            raise ValueError(f"adobe_compatible is for the CMLE demo's simulated events, not model {m.name!r}.")
        cutoffs = {"test": design.test_cutoff} if adobe else design.cutoffs
        build = build_feature_dataset(
            client, name="feature_table_adobe" if adobe else "feature_table", owner=m.name,
            table_prefix=names.table_prefix("feature_table"),
            params=feature_params(client, sources, cutoffs, design.horizon_days),
            fragments=feature_fragments(fs, sources), input_dataset_ids=sources.dataset_ids)
        if build.dropped:
            context.log.info("dropped earlier feature tables %s", build.dropped)
        FeatureTable(build.dataset["id"], build.table, "adobe_compatible" if adobe else "temporal").save(
            store, names.feature_table)
        schema = client.schemas.get_schema(build.dataset["schemaRef"]["id"], full=True)["properties"]
        rows = build.rows if build.rows is not None else int(
            client.catalog.get_batch(build.dataset["lastBatchId"])["metrics"].get("outputRecordCount", 0))
        return dg.MaterializeResult(
            metadata={
                "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
                "train_cutoff": "adobe rows (one event per profile)" if adobe else design.train_cutoff.isoformat(),
                "test_cutoff": design.test_cutoff.isoformat(), "horizon_days": design.horizon_days,
                "design": "adobe_compatible" if adobe else "temporal", "dagster/row_count": rows,
                "query_id": build.query["id"] if build.query else "reused", "sql": sql_md(build.sql),
                "features": dg.MetadataValue.json(list(fs.names)), "feature_count": len(fs.names),
                "derived_features": fs.derived, "feature_set": dg.MetadataValue.json(fs.meta),
                "dagster/column_lineage": _lineage(m, fs, list(schema), client.schemas.tenant_id()),
                "dropped_versions": dg.MetadataValue.json(build.dropped),
                "dagster/column_schema": xdm_column_schema(schema),
            },
            check_results=[dg.AssetCheckResult(check_name="data_sufficient", passed=sufficiency.passed,
                                               metadata=sufficiency.metadata())],
        )

    @dg.asset(key=m.key("training_export"), group_name=m.group(FEATURES), deps=[m.key("feature_table")],
              kinds={"adobe", "parquet"},
              check_specs=[
                  dg.AssetCheckSpec("one_row_per_profile", asset=m.key("training_export"), blocking=True,
                                    description="Each profile appears at most once per split."),
                  dg.AssetCheckSpec("enough_goals", asset=m.key("training_export"), blocking=True,
                                    description="Each split has enough profiles that reach the goal and enough "
                                                "that do not (Customer AI asks for 500 of each)."),
              ])
    def training_export(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """The feature table exported by an AEP dataset export flow as gzip Parquet into storage, in AEP's
        {path}/{datasetId}/exportTime=YYYYMMDDHHMM/ layout."""
        client, store = aep.client(), storage.get()
        table = FeatureTable.load(store, names.feature_table, asset=f"{m.name}/feature_table")
        ds = client.catalog.get_dataset(table.dataset_id)
        export = export_dataset(client, store, ds["id"], flow_name=names.flow("training export"),
                                path=names.export_path("training"))
        frame = store.read_parquet(export.keys)
        test = frame.filter(pl.col("split") == "test")
        if test.is_empty():
            raise ValueError(f"The feature table {ds['name']} has no 'test' rows; no profile had events before the "
                             "test cutoff. Move cutoffs.test later, or check events.datasets.")
        TrainingExport(ds["id"], export.keys, export.run_id, test["cutoff"][0].isoformat(),
                       int(test["horizonDays"][0])).save(store, names.training_export)
        per_split = frame.group_by("split").agg(pl.len().alias("rows"), pl.col(ID).n_unique().alias("profiles"),
                                                pl.col(LABEL).mean().alias("positive_rate")).sort("split")
        duplicates = int((per_split["rows"] - per_split["profiles"]).sum())
        goals = check_training_rows(frame, spec.sufficiency)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height, "dagster/uri": store.uri(export.folder), "dataset_id": ds["id"],
                "flow_id": export.flow["id"], "run_id": export.run_id, "files": dg.MetadataValue.json(export.keys),
                "splits": md_table(per_split), "dagster/column_schema": column_schema(frame),
                "preview": md_table(frame),
            },
            check_results=[
                dg.AssetCheckResult(check_name="one_row_per_profile", passed=duplicates == 0,
                                    metadata={"duplicate_rows": duplicates, "rows": frame.height}),
                dg.AssetCheckResult(check_name="enough_goals", passed=goals.passed, metadata=goals.metadata()),
            ],
        )

    return [eda_report, feature_table, training_export]
