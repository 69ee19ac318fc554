"""The Query Accelerated Store: ``qsaccel.profile_agg.*``, the star schema behind Real-Time CDP's dashboards.

Tables and columns are the ones Adobe's dashboard SQL reads (help/dashboards/data-models/
cdp-insights-data-model-b2c.md). The dimensions are read live from the sandbox's own merge policy, identity
namespaces, segments and audience-activation flows. The facts are daily snapshots of the profile store,
taken after every successful segment job ends, as AEP's reporting follows its segmentation (in the
background: a query of the store, or the sandbox's next segment job, waits for it; the day's rows are
replaced, earlier days kept for the trend lines), each snapshot logged in ``adwh_lkup_process_delta_log``
as ``FACT_TABLES_PROCESSING``.

Ids are 32-bit integers, as in AEP: a stable hash of the object's id. ``namespace_description`` is the
namespace code in lower case, as in Adobe's samples (``'crmid'``, ``'email'``). A sandbox profile is keyed
by its primary identity, so every profile has one identity and ``count_of_Single_Identity_profiles`` equals
``count_of_profiles``; the overlap tables count profiles per combination of namespaces all the same.
Not modelled: ``adwh_dim_destination_platform`` and the AI-model tables, which no documented query reads.
"""

import datetime as dt
import logging
import shutil
import threading

import duckdb
import mmh3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from .. import names
from ..datalake import scan_sql
from ..flow_service import FlowServiceBackend
from ..names import path_sql
from ..profile_store import MERGE_POLICY_ID, ProfileStore, members_path, merge_policy
from ..segmentation import SegmentationBackend
from ..store import Scope

log = logging.getLogger("aep_sandbox")
CATALOG, SCHEMA = "qsaccel", "profile_agg"
PROCESS = "FACT_TABLES_PROCESSING"
# The trend-line tables read the same rows as their facts (every day's snapshot); aepp reads the profile
# trend from adwh_fact_profile_by_trendlines.
_TRENDED = ("adwh_fact_profile_by_namespace", "adwh_fact_profile_by_segment",
            "adwh_fact_profile_by_segment_and_namespace")
TRENDLINES = {"adwh_fact_profile_by_trendlines": "adwh_fact_profile", **{f"{f}_trendlines": f for f in _TRENDED}}
_write_lock = threading.Lock()


def int_id(key: str) -> int:
    return mmh3.hash(key, signed=True)


def reads_store(statement: exp.Expression) -> bool:
    return any(t.catalog.lower() == CATALOG for t in statement.find_all(exp.Table))


def refuse_writes(statement: exp.Expression) -> None:
    if not isinstance(statement, (exp.Create, exp.Insert, exp.Drop, exp.Delete, exp.Update, exp.Alter)):
        return
    written = statement.args.get("tables") or [statement.this]  # DROP lists its tables; the others name one
    if any(isinstance(t, exp.Expression) and (table := t.find(exp.Table)) is not None
           and table.catalog.lower() == CATALOG for t in written):
        raise PermissionError(f"{CATALOG}.{SCHEMA} is the Query Accelerated Store's reporting model, which the "
                              "platform maintains; write your own tables into the data lake instead.")


def folder(platform, scope: Scope):
    return names.inside(platform.config.data_dir, "qsaccel", scope.org.replace("@", "_"), scope.sandbox)


def attach(con: duckdb.DuckDBPyConnection, scope: Scope, platform) -> None:
    """``qsaccel.profile_agg`` on ``con``: the live dimensions and the stored snapshots."""
    platform.wait_for_segment_job_listeners(scope)  # the last segment job's snapshot is taken after it ends
    con.execute(f"ATTACH ':memory:' AS {CATALOG}")
    con.execute(f"CREATE SCHEMA {CATALOG}.{SCHEMA}")
    tables = {**dimensions(scope, platform), **_stored_facts(platform, scope)}
    tables["adwh_dim_date"] = pa.table({"date_key": pa.array(sorted(
        {d for d in tables["adwh_lkup_process_delta_log"].column("process_date").to_pylist()}), pa.date32())})
    for name, table in tables.items():
        # The store answers like the warehouse behind it: unquoted names come back in upper case.
        con.register("_qsaccel_rows", table.rename_columns([c.upper() for c in table.column_names]))
        con.execute(f"CREATE TABLE {CATALOG}.{SCHEMA}.{name} AS SELECT * FROM _qsaccel_rows")
        con.unregister("_qsaccel_rows")
    for name, source in TRENDLINES.items():
        con.execute(f"CREATE VIEW {CATALOG}.{SCHEMA}.{name} AS SELECT * FROM {CATALOG}.{SCHEMA}.{source}")


def dimensions(scope: Scope, platform) -> dict[str, pa.Table]:
    policy = merge_policy(scope)
    policy_id = int_id(MERGE_POLICY_ID)
    spaces = sorted({ns for *_, ns in ProfileStore(scope, platform).sources()})
    segments = SegmentationBackend(scope, platform).segments()
    destinations, mappings = _activations(scope, platform)
    return {
        "adwh_dim_merge_policies": pa.table({"merge_policy_id": pa.array([policy_id], pa.int32()),
                                             "merge_policy_name": [policy["name"]],
                                             "merge_policy": [policy["id"]],
                                             "is_default_merge_policy": [bool(policy["default"])]}),
        "adwh_dim_namespaces": pa.table({
            "namespace_id": pa.array([int_id(ns) for ns in spaces], pa.int32()),
            "namespace_description": pa.array([ns.lower() for ns in spaces], pa.string()),
            "merge_policy_id": pa.array([policy_id] * len(spaces), pa.int32())}),
        "adwh_dim_segments": pa.table({
            "segment_id": pa.array([int_id(s["id"]) for s in segments], pa.int32()),
            "segment": pa.array([s["id"] for s in segments], pa.string()),
            "segment_name": pa.array([s["name"] for s in segments], pa.string()),
            "segment_description": pa.array([s.get("description", "") for s in segments], pa.string()),
            "segment_namespace": pa.array(["UPS"] * len(segments), pa.string()),
            "merge_policy_id": pa.array([policy_id] * len(segments), pa.int32())}),
        "adwh_dim_destination": destinations,
        "adwh_dim_br_segment_destinations": mappings,
    }


def _activations(scope: Scope, platform) -> tuple[pa.Table, pa.Table]:
    """Audience-activation flows as destinations, and which segments each one activates."""
    dest, br = {"destination_id": [], "destination_name": [], "destination": []}, {
        "segment_id": [], "destination_id": [], "create_time": []}
    for flow, destination, segment_ids in FlowServiceBackend(scope, platform).audience_activations():
        dest["destination_id"].append(int_id(flow["id"]))
        dest["destination_name"].append(flow["name"])
        dest["destination"].append(destination)
        for seg_id in segment_ids:
            br["segment_id"].append(int_id(seg_id))
            br["destination_id"].append(int_id(flow["id"]))
            br["create_time"].append(dt.datetime.fromtimestamp(flow.get("updatedAt", 0) / 1000, dt.UTC))
    return (pa.table({"destination_id": pa.array(dest["destination_id"], pa.int32()),
                      "destination_name": pa.array(dest["destination_name"], pa.string()),
                      "destination": pa.array(dest["destination"], pa.string())}),
            pa.table({"segment_id": pa.array(br["segment_id"], pa.int32()),
                      "destination_id": pa.array(br["destination_id"], pa.int32()),
                      "create_time": pa.array(br["create_time"], pa.timestamp("us", tz="UTC"))}))


def refresh(scope: Scope, platform) -> None:
    """Take today's snapshot of the profile store and the evaluated segments, after a segment job."""
    today = dt.datetime.now(dt.UTC).date()
    store = ProfileStore(scope, platform)
    members = {s["id"]: path for s in SegmentationBackend(scope, platform).segments()
               if (path := members_path(platform, scope, s["id"])).exists()}
    out = folder(platform, scope)
    before = out / "members"  # each segment's members at the previous snapshot: who entered, stayed, left
    previous = [_with_segment(pq.read_table(before / f"{seg}.parquet", columns=["identity"]), seg)
                for seg in members if (before / f"{seg}.parquet").exists()]
    con = store.connect()
    try:
        con.register("prev_members", pa.concat_tables(previous) if previous else _with_segment(
            pa.table({"identity": pa.array([], pa.string())}), ""))
        facts = _snapshot(con, store, scope, platform, members)
    finally:
        con.close()
    with _write_lock:
        before.mkdir(parents=True, exist_ok=True)
        for seg, path in members.items():
            shutil.copyfile(path, before / f"{seg}.parquet")
        for name, rows in facts.items():
            rows = _with_date(rows, today)
            path = out / f"{name}.parquet"
            if path.exists():
                kept = pq.read_table(path)
                kept = kept.filter(pc.not_equal(kept.column("date_key"), pa.scalar(today, pa.date32())))
                rows = pa.concat_tables([kept, rows], promote_options="default")  # older days may lack new columns
            _write(path, rows)
        log_path = out / "adwh_lkup_process_delta_log.parquet"
        entry = pa.table({"process_name": [PROCESS], "process_status": ["SUCCESSFUL"],
                          "process_date": pa.array([today], pa.date32()),
                          "process_time": pa.array([dt.datetime.now(dt.UTC)], pa.timestamp("us", tz="UTC")),
                          "merge_policy_id": pa.array([int_id(MERGE_POLICY_ID)], pa.int32())})
        _write(log_path, pa.concat_tables([pq.read_table(log_path), entry]) if log_path.exists() else entry)
    log.info("qsaccel.profile_agg refreshed for %s: %d segments", today, len(members))


def _with_segment(identities: pa.Table, seg_id: str) -> pa.Table:
    return identities.add_column(0, "segment_id", pa.array([int_id(seg_id)] * identities.num_rows, pa.int32()))


def _snapshot(con, store: ProfileStore, scope: Scope, platform, members: dict) -> dict[str, pa.Table]:
    policy_id = int_id(MERGE_POLICY_ID)
    selects, spaces = [], set()
    for ds, _, path, namespace in store.sources():
        spaces.add(namespace)
        for batch in store.catalog.active_batches(ds["id"]):
            files = platform.lake.batch_files(scope.org, scope.sandbox, ds["id"], batch["id"])
            if files:
                selects.append(f"SELECT CAST({path_sql(path)} AS VARCHAR) AS identity, "
                               f"{names.quote_literal(namespace)} AS namespace FROM {scan_sql(files)}")
    source = " UNION ALL ".join(selects) or "SELECT NULL::VARCHAR AS identity, NULL::VARCHAR AS namespace WHERE FALSE"
    con.execute(f"CREATE TEMP TABLE ids AS SELECT DISTINCT identity, namespace FROM ({source}) "
                "WHERE identity IS NOT NULL")
    con.execute("CREATE TEMP TABLE profiles AS SELECT identity, list_sort(list(namespace)) AS spaces FROM ids "
                "GROUP BY identity")
    member_rows = [f"SELECT {int_id(seg)}::INTEGER AS segment_id, identity FROM "
                   f"{scan_sql([path])}" for seg, path in members.items()]
    con.execute("CREATE TEMP TABLE members AS " + (" UNION ALL ".join(member_rows) or
                                                   "SELECT NULL::INTEGER AS segment_id, NULL::VARCHAR AS identity "
                                                   "WHERE FALSE"))
    # Ids of the few namespaces and namespace combinations, hashed here once each rather than per row.
    con.register("ns_ids", pa.table({"namespace": pa.array(sorted(spaces), pa.string()),
                                     "namespace_id": pa.array([int_id(n) for n in sorted(spaces)], pa.int32())}))
    combos = [row[0] for row in con.execute("SELECT DISTINCT spaces FROM profiles").fetchall()]
    con.register("combo_ids", pa.table({"spaces": pa.array(combos, pa.list_(pa.string())),
                                        "overlap_id": pa.array([int_id("|".join(c)) for c in combos], pa.int32())}))
    con.execute("CREATE TEMP TABLE profile_combos AS SELECT p.*, c.overlap_id FROM profiles p "
                "JOIN combo_ids c ON p.spaces = c.spaces")
    single = "count(*) FILTER (WHERE len(p.spaces) = 1)"
    queries = {
        "adwh_fact_profile": f"SELECT count(*) AS count_of_profiles, {single} AS count_of_Single_Identity_profiles, "
                             "sum(len(p.spaces)) AS count_of_identities FROM profiles p",
        "adwh_fact_profile_by_namespace": f"SELECT n.namespace_id, count(*) AS count_of_profiles, "
                                          f"{single} AS count_of_Single_Identity_profiles, "
                                          "count(*) AS count_of_identities FROM ids i "
                                          "JOIN profiles p USING (identity) JOIN ns_ids n USING (namespace) "
                                          "GROUP BY 1",
        # Realized: members new since the previous snapshot; existing: members then and now; exited: gone.
        "adwh_fact_profile_by_segment": "SELECT coalesce(m.segment_id, v.segment_id) AS segment_id, "
                                        "count(m.identity) AS count_of_profiles, "
                                        "count(m.identity) AS count_of_identities, "
                                        "count(m.identity) FILTER (WHERE v.identity IS NULL) "
                                        "AS count_of_calculated_realized_profiles, "
                                        "count(m.identity) FILTER (WHERE v.identity IS NOT NULL) "
                                        "AS count_of_calculated_existing_profiles, "
                                        "count(v.identity) FILTER (WHERE m.identity IS NULL) "
                                        "AS count_of_calculated_exited_profiles "
                                        "FROM members m FULL OUTER JOIN prev_members v "
                                        "ON m.segment_id = v.segment_id AND m.identity = v.identity GROUP BY 1",
        "adwh_fact_profile_by_segment_and_namespace": "SELECT m.segment_id, n.namespace_id, "
                                                      "count(*) AS count_of_profiles, count(*) AS count_of_identities "
                                                      "FROM members m JOIN ids i USING (identity) "
                                                      "JOIN ns_ids n USING (namespace) GROUP BY 1, 2",
        "adwh_fact_profile_overlap_of_namespace": "SELECT overlap_id, count(*) AS count_of_profiles "
                                                  "FROM profile_combos GROUP BY 1",
        "adwh_fact_profile_overlap_of_namespace_by_segment": "SELECT m.segment_id, p.overlap_id, "
                                                             "count(*) AS count_of_profiles FROM members m "
                                                             "JOIN profile_combos p USING (identity) GROUP BY 1, 2",
        "adwh_dim_overlap_namespaces": "SELECT DISTINCT overlap_id, lower(unnest(spaces)) AS overlap_namespaces "
                                       "FROM combo_ids",
    }
    out = {}
    for name, sql in queries.items():
        rows = con.sql(f"SELECT {policy_id}::INTEGER AS merge_policy_id, * FROM ({sql})").to_arrow_table()
        out[name] = rows.cast(pa.schema([f.with_type(pa.int64()) if f.name.startswith("count_") else f
                                         for f in rows.schema]))
    return out


def _with_date(rows: pa.Table, day: dt.date) -> pa.Table:
    return rows.add_column(0, "date_key", pa.array([day] * rows.num_rows, pa.date32()))


def _stored_facts(platform, scope: Scope) -> dict[str, pa.Table]:
    """The snapshots so far; before the first segment job, empty tables with the right columns."""
    out = {}
    stored = folder(platform, scope)
    for name in _EMPTY:
        path = stored / f"{name}.parquet"
        out[name] = pq.read_table(path) if path.exists() else _EMPTY[name]
    return out


def _write(path, table: pa.Table) -> None:
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


_I32, _I64, _DATE = pa.int32(), pa.int64(), pa.date32()
_COUNTS = [("count_of_profiles", _I64)]
# Table.from_batches, not Schema.empty_table, which imports pandas (a quarter of a second of every start).
_EMPTY = {name: pa.Table.from_batches([], pa.schema(cols)) for name, cols in {
    "adwh_fact_profile": [("date_key", _DATE), ("merge_policy_id", _I32), ("count_of_profiles", _I64),
                          ("count_of_Single_Identity_profiles", _I64), ("count_of_identities", _I64)],
    "adwh_fact_profile_by_namespace": [("date_key", _DATE), ("merge_policy_id", _I32), ("namespace_id", _I32),
                                       ("count_of_profiles", _I64), ("count_of_Single_Identity_profiles", _I64),
                                       ("count_of_identities", _I64)],
    "adwh_fact_profile_by_segment": [("date_key", _DATE), ("merge_policy_id", _I32), ("segment_id", _I32),
                                     ("count_of_profiles", _I64), ("count_of_identities", _I64),
                                     ("count_of_calculated_realized_profiles", _I64),
                                     ("count_of_calculated_existing_profiles", _I64),
                                     ("count_of_calculated_exited_profiles", _I64)],
    "adwh_fact_profile_by_segment_and_namespace": [("date_key", _DATE), ("merge_policy_id", _I32),
                                                   ("segment_id", _I32), ("namespace_id", _I32),
                                                   ("count_of_profiles", _I64), ("count_of_identities", _I64)],
    "adwh_fact_profile_overlap_of_namespace": [("date_key", _DATE), ("merge_policy_id", _I32), ("overlap_id", _I32),
                                               *_COUNTS],
    "adwh_fact_profile_overlap_of_namespace_by_segment": [("date_key", _DATE), ("merge_policy_id", _I32),
                                                          ("segment_id", _I32), ("overlap_id", _I32), *_COUNTS],
    "adwh_dim_overlap_namespaces": [("date_key", _DATE), ("merge_policy_id", _I32), ("overlap_id", _I32),
                                    ("overlap_namespaces", pa.string())],
    "adwh_lkup_process_delta_log": [("process_name", pa.string()), ("process_status", pa.string()),
                                    ("process_date", _DATE), ("process_time", pa.timestamp("us", tz="UTC")),
                                    ("merge_policy_id", _I32)],
}.items()}
