"""The feature stages of a model, each one function with a typed result: the EDA report, the feature
table with its sufficiency check, and the training rows exported to storage."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from ..aep import AEPClient
from ..ml import plots
from ..ml.design import TemporalSplit
from ..ml.feature_set import ID, LABEL, FeatureSet
from . import report
from .exports import Export, export_dataset
from .feature_builds import (
    FeatureBuild,
    build_feature_dataset,
    feature_fragments,
    feature_params,
    render,
    resolve_feature_set,
    transient_feature_dataset,
)
from .feature_sql import source_events_cte
from .handoff import ADOBE_COMPATIBLE, TEMPORAL, FeatureTable, TrainingExport
from .preflight import check_model_data, check_model_sql
from .sources import resolve_sources
from .stage_context import StageContext
from .sufficiency import SufficiencyResult, check_source, check_training_rows


@dataclass(frozen=True)
class EdaReport:
    build: FeatureBuild
    report: pl.DataFrame  # one row per eventType, most frequent first
    daily: pl.DataFrame  # day, eventType, events
    cooccurrence: pl.DataFrame  # a, b, profiles with both event types

    def metadata(self) -> dict:
        r = self.report
        return {
            "total_events": int(r["events"].sum()), "event_types": r.height,
            "funnel": report.Table(r.drop("first_seen", "last_seen").with_columns(
                r["conversion_rate_with_event"].round(3), r["corr_count_with_conversion"].round(3)), rows=20),
            "first_event": str(r["first_seen"].min()), "last_event": str(r["last_seen"].max()),
            "funnel_plot": report.Image("Funnel", plots.funnel_plot(r)),
            "goal_correlation_plot": report.Image("Event types and the goal", plots.goal_correlation_plot(r)),
            "volume_plot": report.Image("Event volumes", plots.volume_plot(self.daily)),
            "cooccurrence_plot": report.Image("Co-occurrence", plots.cooccurrence_plot(self.cooccurrence)),
            "sql": report.Sql(self.build.sql),
            "query_id": self.build.query["id"] if self.build.query else "reused",
        }


EDA_DAILY = """SELECT CAST(timestamp AS DATE) AS day, eventType, COUNT(*) AS events
FROM events
GROUP BY CAST(timestamp AS DATE), eventType
ORDER BY day, eventType
LIMIT 50000"""

EDA_COOCCURRENCE = """SELECT a.eventType AS a, b.eventType AS b, COUNT(*) AS profiles
FROM kinds AS a
JOIN kinds AS b ON a.profile_id = b.profile_id
GROUP BY a.eventType, b.eventType
LIMIT 50000"""


def _interactive(client: AEPClient, fs: FeatureSet, tables: list[str], select: str) -> pl.DataFrame:
    """A small aggregate over the model's events, by an interactive SELECT (PostgreSQL endpoint)."""
    sql = (f"WITH {source_events_cte(fs, tables)},\n"
           f"events AS (SELECT * FROM source_events WHERE {ID} IS NOT NULL AND eventType IS NOT NULL),\n"
           f"kinds AS (SELECT DISTINCT {ID}, eventType FROM events)\n{select}")
    rows = client.query.select(render(sql, {"tenant_id": client.schemas.tenant_id()}))
    return pl.DataFrame(rows, infer_schema_length=None)


def explore_events(stage: StageContext) -> EdaReport:
    """Volumes, the funnel and each event type's relation to the goal, by a Query Service CTAS and export."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    sources = resolve_sources(client, spec, names)
    check_model_sql(client, spec, sources)
    check_model_data(client, spec, sources)
    fs = FeatureSet(identity=spec.events.identity, goal=spec.goal.condition, events=())
    # The two interactive SELECTs run on the PostgreSQL endpoint while the CTAS runs and exports: Query Service
    # serves them side by side, and each waits on the other's round trips less.
    with ThreadPoolExecutor(2, thread_name_prefix="eda-select") as pool:
        daily, pairs = (pool.submit(_interactive, client, fs, sources.event_tables, select)
                        for select in (EDA_DAILY, EDA_COOCCURRENCE))
        with transient_feature_dataset(client, name="eda_report", owner=names.model,
                                       table_prefix=names.table_prefix("eda"),
                                       params={"tenant_id": client.schemas.tenant_id()},
                                       fragments=feature_fragments(fs, sources),
                                       input_dataset_ids=sources.event_dataset_ids) as build:
            export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("eda export"),
                                    path=names.export_path("eda"))
            report = store.read_parquet(export.keys).sort("events", descending=True)
        return EdaReport(build, report, daily.result(), pairs.result())


@dataclass(frozen=True)
class FeatureTableBuild:
    build: FeatureBuild
    feature_set: FeatureSet
    design: TemporalSplit
    adobe_compatible: bool
    sufficiency: SufficiencyResult
    rows: int
    columns: dict  # the table's resolved XDM properties
    tenant: str

    def metadata(self) -> dict:
        build, fs, design = self.build, self.feature_set, self.design
        return {
            "dataset_id": build.dataset["id"], "dagster/table_name": build.table,
            "train_cutoff": "adobe rows (one event per profile)" if self.adobe_compatible
            else design.train_cutoff.isoformat(),
            "test_cutoff": design.test_cutoff.isoformat(), "horizon_days": design.horizon_days,
            "design": ADOBE_COMPATIBLE if self.adobe_compatible else TEMPORAL, "dagster/row_count": self.rows,
            "query_id": build.query["id"] if build.query else "reused", "sql": report.Sql(build.sql),
            "features": report.Json(list(fs.names)), "feature_count": len(fs.names),
            "derived_features": fs.derived, "feature_set": report.Json(fs.meta),
            "dropped_versions": report.Json(build.dropped),
            "dagster/column_schema": report.XdmColumns(self.columns),
        }

    def checks(self) -> list[report.Check]:
        s = self.sufficiency
        return [report.Check("data_sufficient", s.passed, s.metadata(), why="; ".join(s.problems),
                             fix="each problem above says what to change in the model's YAML")]


def build_feature_table(stage: StageContext, *, adobe_compatible: bool = False) -> FeatureTableBuild:
    """The model's features at T1 and T2 (the YAML's cutoffs) with their labels, as a CTAS table of the model's;
    its feature set is resolved (derived from the data when the YAML lists none) and handed to training with the
    table."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    design = spec.temporal_split()
    design.require_observed()
    if adobe_compatible and not spec.simulated:
        raise ValueError(f"adobe_compatible is for the CMLE demo's simulated events, not model {spec.name!r}.")
    sources = resolve_sources(client, spec, names)
    check_model_sql(client, spec, sources)
    check_model_data(client, spec, sources, design.train_cutoff)
    fs = resolve_feature_set(client, spec, sources, design.train_cutoff)
    cutoffs = {"test": design.test_cutoff} if adobe_compatible else design.cutoffs
    # The sufficiency SELECT runs on the PostgreSQL endpoint while the CTAS runs, as EDA's do: its verdict is
    # the blocking data_sufficient check, which holds the table back from training whatever the order.
    with ThreadPoolExecutor(1, thread_name_prefix="sufficiency") as pool:
        checking = pool.submit(check_source, client, spec, fs, sources, design)
        build = build_feature_dataset(
            client, name="feature_table_adobe" if adobe_compatible else "feature_table", owner=names.model,
            table_prefix=names.table_prefix("feature_table"),
            params=feature_params(client, sources, cutoffs, design.horizon_days),
            fragments=feature_fragments(fs, sources), input_dataset_ids=sources.dataset_ids)
        sufficiency = checking.result()
    FeatureTable(build.dataset["id"], build.table, ADOBE_COMPATIBLE if adobe_compatible else TEMPORAL, fs).save(
        store, names.feature_table)
    columns = client.schemas.get_schema(build.dataset["schemaRef"]["id"], full=True)["properties"]
    rows = build.rows if build.rows is not None else int(
        client.catalog.get_batch(build.dataset["lastBatchId"])["metrics"].get("outputRecordCount", 0))
    return FeatureTableBuild(build, fs, design, adobe_compatible, sufficiency, rows, columns,
                             client.schemas.tenant_id())


@dataclass(frozen=True)
class TrainingRows:
    dataset: dict
    export: Export
    frame: pl.DataFrame
    per_split: pl.DataFrame  # rows, profiles and positive rate per split
    duplicate_rows: int
    goals: SufficiencyResult
    uri: str  # the export's folder

    def metadata(self) -> dict:
        return {
            "dagster/row_count": self.frame.height, "dagster/uri": self.uri,
            "dataset_id": self.dataset["id"], "flow_id": self.export.flow["id"], "run_id": self.export.run_id,
            "files": report.Json(self.export.keys), "splits": report.Table(self.per_split),
            "dagster/column_schema": report.Columns(self.frame), "preview": report.Table(self.frame),
        }

    def checks(self) -> list[report.Check]:
        rows, duplicates = self.frame.height, self.duplicate_rows
        return [
            report.Check("one_row_per_profile", duplicates == 0, {"duplicate_rows": duplicates, "rows": rows},
                         why=f"{duplicates} of {rows} rows repeat a profile within a split",
                         fix="events.identity must give one value per person; profile.identity one per profile "
                             "row"),
            report.Check("enough_goals", self.goals.passed, self.goals.metadata(), why="; ".join(self.goals.problems),
                         fix="each problem above says what to change"),
        ]


def export_training_rows(stage: StageContext) -> TrainingRows:
    """The feature table the model's feature_table built, exported to storage by a dataset export flow, and handed
    to training with the feature set and design the table was built with."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    table = FeatureTable.load(store, names.feature_table, asset=f"{names.model}/feature_table")
    ds = client.catalog.get_dataset(table.dataset_id)
    export = export_dataset(client, store, ds["id"], flow_name=names.flow("training export"),
                            path=names.export_path("training"))
    frame = store.read_parquet(export.keys)
    test = frame.filter(pl.col("split") == "test")
    if test.is_empty():
        raise ValueError(f"The feature table {ds['name']} has no 'test' rows; no profile had events before the "
                         "test cutoff. Move cutoffs.test later, or check events.datasets.")
    TrainingExport(ds["id"], export.keys, export.run_id, test["cutoff"][0].isoformat(), int(test["horizonDays"][0]),
                   table.feature_set, table.design).save(store, names.training_export)
    per_split = frame.group_by("split").agg(pl.len().alias("rows"), pl.col(ID).n_unique().alias("profiles"),
                                            pl.col(LABEL).mean().alias("positive_rate")).sort("split")
    duplicates = int((per_split["rows"] - per_split["profiles"]).sum())
    return TrainingRows(ds, export, frame, per_split, duplicates, check_training_rows(frame, spec.sufficiency),
                        store.uri(export.folder))
