"""The feature stages of a model, each one function with a typed result: the EDA report, the feature
table with its sufficiency check, and the training rows exported to storage."""

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from ..aep import AEPClient
from ..ml.design import TemporalSplit
from ..ml.feature_set import ID, LABEL, FeatureSet
from ..storage import Storage
from .exports import Export, export_dataset
from .feature_sql import source_events_cte
from .features import (
    FeatureBuild,
    build_feature_dataset,
    feature_fragments,
    feature_params,
    render,
    resolve_feature_set,
    resolve_sources,
    transient_feature_dataset,
)
from .handoff import FeatureTable, TrainingExport
from .naming import Names
from .preflight import check_model_data, check_model_sql
from .spec import ModelSpec
from .sufficiency import SufficiencyResult, check_source, check_training_rows


@dataclass(frozen=True)
class EdaReport:
    build: FeatureBuild
    report: pl.DataFrame  # one row per eventType, most frequent first
    daily: pl.DataFrame  # day, eventType, events
    cooccurrence: pl.DataFrame  # a, b, profiles with both event types


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


def explore_events(client: AEPClient, store: Storage, spec: ModelSpec, names: Names) -> EdaReport:
    """Volumes, the funnel and each event type's relation to the goal, by a Query Service CTAS and export."""
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
                                       input_dataset_ids=[ds["id"] for ds in sources.events]) as build:
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


def build_feature_table(client: AEPClient, store: Storage, spec: ModelSpec, names: Names, design: TemporalSplit,
                        *, adobe_compatible: bool = False) -> FeatureTableBuild:
    """The model's features at T1 and T2 with their labels, as a CTAS table of the model's; its feature set is
    resolved (derived from the data when the YAML lists none) and kept for the model version."""
    design.require_observed()
    if adobe_compatible and not spec.simulated:
        raise ValueError(f"adobe_compatible is for the CMLE demo's simulated events, not model {spec.name!r}.")
    sources = resolve_sources(client, spec, names)
    check_model_sql(client, spec, sources)
    check_model_data(client, spec, sources, design.train_cutoff)
    fs = resolve_feature_set(client, spec, sources, design.train_cutoff)
    store.write_bytes(names.feature_set, json.dumps(fs.to_json(), indent=1).encode())
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
    FeatureTable(build.dataset["id"], build.table, "adobe_compatible" if adobe_compatible else "temporal").save(
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


def export_training_rows(client: AEPClient, store: Storage, spec: ModelSpec, names: Names) -> TrainingRows:
    """The feature table the model's feature_table built, exported to storage by a dataset export flow."""
    table = FeatureTable.load(store, names.feature_table, asset=f"{names.model}/feature_table")
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
    return TrainingRows(ds, export, frame, per_split, duplicates, check_training_rows(frame, spec.sufficiency))
