"""Query Service exploration, the feature table, and its export to storage."""

import dagster as dg
from pydantic import Field

from ..ml import plots
from ..ml.design import TemporalSplit
from ..ml.feature_set import ID, LABEL, FeatureSet
from ..pipeline.feature_stages import build_feature_table, explore_events, export_training_rows
from ..pipeline.spec import TENANT, ModelSpec, parse_time
from ..resources import AEPResource, StorageResource
from .checks import check_result
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
        relates to the goal (share of profiles reaching it, and the correlation of per-profile counts with it),
        drawn as Adobe's notebooks draw them: the funnel, event volumes over time, the co-occurrence of event
        types, and each type's correlation with the goal."""
        eda = explore_events(aep.client(), storage.get(), spec, names)
        report = eda.report
        return dg.MaterializeResult(metadata={
            "total_events": int(report["events"].sum()), "event_types": report.height,
            "funnel": md_table(report.drop("first_seen", "last_seen").with_columns(
                report["conversion_rate_with_event"].round(3), report["corr_count_with_conversion"].round(3)),
                rows=20),
            "first_event": str(report["first_seen"].min()), "last_event": str(report["last_seen"].max()),
            **{key: dg.MetadataValue.md(plots.markdown_image(title, draw)) for key, title, draw in (
                ("funnel_plot", "Funnel", plots.funnel_plot(report)),
                ("goal_correlation_plot", "Event types and the goal", plots.goal_correlation_plot(report)),
                ("volume_plot", "Event volumes", plots.volume_plot(eda.daily)),
                ("cooccurrence_plot", "Co-occurrence", plots.cooccurrence_plot(eda.cooccurrence)))},
            "sql": sql_md(eda.build.sql),
            "query_id": eda.build.query["id"] if eda.build.query else "reused",
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
        t = build_feature_table(aep.client(), storage.get(), spec, names, config.split(spec),
                                adobe_compatible=config.adobe_compatible)
        build, fs, design = t.build, t.feature_set, t.design
        if build.dropped:
            context.log.info("dropped earlier feature tables %s", build.dropped)
        return dg.MaterializeResult(
            metadata={
                "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
                "train_cutoff": "adobe rows (one event per profile)" if t.adobe_compatible
                else design.train_cutoff.isoformat(),
                "test_cutoff": design.test_cutoff.isoformat(), "horizon_days": design.horizon_days,
                "design": "adobe_compatible" if t.adobe_compatible else "temporal", "dagster/row_count": t.rows,
                "query_id": build.query["id"] if build.query else "reused", "sql": sql_md(build.sql),
                "features": dg.MetadataValue.json(list(fs.names)), "feature_count": len(fs.names),
                "derived_features": fs.derived, "feature_set": dg.MetadataValue.json(fs.meta),
                "dagster/column_lineage": _lineage(m, fs, list(t.columns), t.tenant),
                "dropped_versions": dg.MetadataValue.json(build.dropped),
                "dagster/column_schema": xdm_column_schema(t.columns),
            },
            check_results=[check_result(context, "data_sufficient", t.sufficiency.passed, t.sufficiency.metadata(),
                                        why="; ".join(t.sufficiency.problems),
                                        fix="each problem above says what to change in the model's YAML")],
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
    def training_export(context: dg.AssetExecutionContext, aep: AEPResource,
                        storage: StorageResource) -> dg.MaterializeResult:
        """The feature table exported by an AEP dataset export flow as gzip Parquet into storage, in AEP's
        {path}/{datasetId}/exportTime=YYYYMMDDHHMM/ layout."""
        store = storage.get()
        t = export_training_rows(aep.client(), store, spec, names)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": t.frame.height, "dagster/uri": store.uri(t.export.folder),
                "dataset_id": t.dataset["id"], "flow_id": t.export.flow["id"], "run_id": t.export.run_id,
                "files": dg.MetadataValue.json(t.export.keys), "splits": md_table(t.per_split),
                "dagster/column_schema": column_schema(t.frame), "preview": md_table(t.frame),
            },
            check_results=[
                check_result(context, "one_row_per_profile", t.duplicate_rows == 0,
                             {"duplicate_rows": t.duplicate_rows, "rows": t.frame.height},
                             why=f"{t.duplicate_rows} of {t.frame.height} rows repeat a profile within a split",
                             fix="events.identity must give one value per person; profile.identity one per profile "
                                 "row"),
                check_result(context, "enough_goals", t.goals.passed, t.goals.metadata(),
                             why="; ".join(t.goals.problems), fix="each problem above says what to change"),
            ],
        )

    return [eda_report, feature_table, training_export]
