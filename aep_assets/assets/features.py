"""Query Service exploration, the feature table, and its export to storage."""

from typing import ClassVar

import dagster as dg
from pydantic import Field

from ..ml.feature_set import ID, LABEL, FeatureSet
from ..pipeline.feature_stages import build_feature_table, explore_events, export_training_rows
from ..pipeline.spec import TENANT
from ..resources import AEPResource, StorageResource
from .instance import FEATURES, Instance, RunConfig
from .metadata import dagster_metadata, materialized


class FeatureConfig(RunConfig):
    train_cutoff: str = Field(default="", description="This run only: T1, the training rows' prediction time, as an "
                              "ISO date or datetime (UTC), instead of the YAML's cutoffs.train.")
    test_cutoff: str = Field(default="", description="This run only: T2, the temporal holdout's prediction time (at "
                             "least outcome_days after T1), instead of cutoffs.test.")
    horizon_days: int = Field(default=0, description="This run only: the outcome window H (a goal in (T, T+H] is a "
                              "positive) instead of goal.outcome_days; 0: the YAML's.")
    adobe_compatible: bool = Field(default=False, description="CMLE demo only: build the training rows the way "
                                   "Adobe's notebooks do (leaky), to compare with the honest design. The test rows "
                                   "stay the temporal holdout, and the no_leakage check will fail.")

    YAML_KEYS: ClassVar[dict[str, str]] = {"train_cutoff": "cutoffs.train", "test_cutoff": "cutoffs.test",
                                           "horizon_days": "goal.outcome_days"}


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
    @dg.asset(key=m.key("eda_report"), group_name=m.group(FEATURES), deps=[m.event_source], kinds={"adobe", "sql"})
    def eda_report(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """Query Service exploration of the model's events: volumes, the funnel, and how each event type
        relates to the goal (share of profiles reaching it, and the correlation of per-profile counts with it),
        drawn as Adobe's notebooks draw them: the funnel, event volumes over time, the co-occurrence of event
        types, and each type's correlation with the goal."""
        return dg.MaterializeResult(metadata=dagster_metadata(explore_events(m.stage(storage, aep=aep)).metadata()))

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
        table = build_feature_table(m.stage(storage, aep=aep, config=config),
                                    adobe_compatible=config.adobe_compatible)
        if table.build.dropped:
            context.log.info("dropped earlier feature tables %s", table.build.dropped)
        lineage = _lineage(m, table.feature_set, list(table.columns), table.tenant)
        return materialized(context, {**table.metadata(), "dagster/column_lineage": lineage}, table.checks())

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
        rows = export_training_rows(m.stage(storage, aep=aep))
        return materialized(context, rows.metadata(), rows.checks())

    return [eda_report, feature_table, training_export]
