"""The Query Accelerated Store, ``qsaccel.profile_agg``, read over PostgreSQL with the SQL of Adobe's own
dashboards (help/dashboards/data-models/cdp-insights-data-model-b2c.md), which must return true counts."""


import psycopg
import pytest

from aep_assets.aep.flow import ExportTarget
from aep_assets.pipeline.schemas import ensure_schemas

from .conftest import client_for, replace_rows
from .contract import scored_profiles

Q = "qsaccel.profile_agg"


def _connect(client):
    p = client.session.json("GET", "/data/foundation/query/connection_parameters")
    return psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbName"], user=p["username"],
                           password=p["token"], sslmode="require", autocommit=True)


def _rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _segment_job(client, *segment_ids: str) -> None:
    client.segmentation.wait_for_job(client.segmentation.create_job(list(segment_ids))["id"], timeout_s=60)


@pytest.fixture
def org(make_sandbox):
    """Six profiles with a propensity, two segments over them, one audience flow activating both."""
    client = client_for(make_sandbox("qsaccel"))
    users = [f"qs-u{i}" for i in range(6)]
    tenant = scored_profiles(client, "qsaccel scores", users, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    high, _ = client.segmentation.ensure_segment("qsaccel high", f"_{tenant}.propensity >= 0.6")
    low, _ = client.segmentation.ensure_segment("qsaccel low", f"_{tenant}.propensity < 0.25")
    return {"client": client, "tenant": tenant, "users": users, "high": high, "low": low}


def test_the_client_opening_a_session_finds_merge_policies_and_namespaces_before_any_segment_job(org):
    with _connect(org["client"]) as conn:
        policies = _rows(conn, f"SELECT merge_policy_id, merge_policy_name FROM {Q}.adwh_dim_merge_policies")
        namespaces = _rows(conn, f"SELECT namespace_id, namespace_description, merge_policy_id "
                                 f"FROM {Q}.adwh_dim_namespaces")
        assert _rows(conn, f"SELECT count(*) FROM {Q}.adwh_fact_profile") == [(0,)]  # no snapshot yet
    assert len(policies) == 1 and policies[0][1] == "Default timestamp-ordered"
    with _connect(org["client"]) as conn, conn.cursor() as cur:
        # Like the warehouse behind the store, unquoted names come back in upper case (aepp relies on it).
        cur.execute(f"SELECT * FROM {Q}.adwh_dim_merge_policies")
        row = dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))
    merge_policy = org["client"].session.json("GET", "/data/core/ups/config/mergePolicies")["children"][0]
    assert row == {"MERGE_POLICY_ID": policies[0][0], "MERGE_POLICY_NAME": "Default timestamp-ordered",
                   "MERGE_POLICY": merge_policy["id"], "IS_DEFAULT_MERGE_POLICY": True}
    assert [n[1] for n in namespaces] == ["ecid"] and namespaces[0][2] == policies[0][0]


def test_dashboard_queries_return_true_counts_and_follow_each_segment_job(org):
    client, high, low = org["client"], org["high"], org["low"]
    _segment_job(client, high["id"], low["id"])
    s3 = ExportTarget(kind="s3", path="activations", bucket="qsaccel-bucket", access_key="k", secret_key="s")
    client.flows.ensure_audience_flow("qsaccel activation", [high, low], s3, [f"_{org['tenant']}.propensity"])
    with _connect(client) as conn:
        # The snapshot's own day, not the test's clock: a segment job just before midnight UTC stays comparable.
        today = _rows(conn, f"SELECT max(date_key) FROM {Q}.adwh_fact_profile")[0][0].isoformat()
        policy = _rows(conn, f"SELECT merge_policy_id FROM {Q}.adwh_dim_merge_policies")[0][0]
        seg_id = dict(_rows(conn, f"SELECT segment, segment_id FROM {Q}.adwh_dim_segments"))
        # The profile model's "Profile count" widget, as documented.
        profile_count = f"""SELECT {Q}.adwh_dim_merge_policies.merge_policy_name,
               sum({Q}.adwh_fact_profile.count_of_profiles) CNT
          FROM {Q}.adwh_fact_profile
          LEFT OUTER JOIN {Q}.adwh_dim_merge_policies ON {Q}.adwh_dim_merge_policies.merge_policy_id=adwh_fact_profile.merge_policy_id
          WHERE {Q}.adwh_fact_profile.date_key='{today}'
            AND {Q}.adwh_fact_profile.merge_policy_id = {policy}
          GROUP BY {Q}.adwh_dim_merge_policies.merge_policy_name;"""  # noqa: E501 - Adobe's SQL as printed
        assert _rows(conn, profile_count) == [("Default timestamp-ordered", 6)]
        single = profile_count.replace("count_of_profiles", "count_of_Single_Identity_profiles")
        assert _rows(conn, single) == [("Default timestamp-ordered", 6)]  # one identity per sandbox profile
        # The namespace model's "Profiles by identity".
        by_identity = f"""SELECT {Q}.adwh_dim_namespaces.namespace_description,
                sum({Q}.adwh_fact_profile_by_namespace_trendlines.count_of_profiles) count_of_profiles
          FROM {Q}.adwh_fact_profile_by_namespace_trendlines
          LEFT OUTER JOIN {Q}.adwh_dim_namespaces ON {Q}.adwh_fact_profile_by_namespace_trendlines.namespace_id = {Q}.adwh_dim_namespaces.namespace_id
          AND {Q}.adwh_fact_profile_by_namespace_trendlines.merge_policy_id = {Q}.adwh_dim_namespaces.merge_policy_id
          WHERE {Q}.adwh_fact_profile_by_namespace_trendlines.merge_policy_id = {policy}
            AND {Q}.adwh_fact_profile_by_namespace_trendlines.date_key = '{today}'
          GROUP BY {Q}.adwh_fact_profile_by_namespace_trendlines.date_key,
                  {Q}.adwh_fact_profile_by_namespace_trendlines.merge_policy_id,
                  {Q}.adwh_dim_namespaces.namespace_description
          ORDER BY count_of_profiles DESC;"""  # noqa: E501
        assert _rows(conn, by_identity) == [("ecid", 6)]
        # The audience model's "Audience size", per segment.
        size = f"""SELECT sum({Q}.adwh_fact_profile_by_segment_trendlines.count_of_profiles) count_of_profiles
            FROM {Q}.adwh_fact_profile_by_segment_trendlines
            LEFT OUTER JOIN {Q}.adwh_dim_segments ON {Q}.adwh_fact_profile_by_segment_trendlines.segment_id = {Q}.adwh_dim_segments.segment_id
            WHERE {Q}.adwh_fact_profile_by_segment_trendlines.segment_id = {{segment}}
              AND {Q}.adwh_fact_profile_by_segment_trendlines.merge_policy_id = {policy}
              AND {Q}.adwh_fact_profile_by_segment_trendlines.date_key = '{today}';"""  # noqa: E501
        assert _rows(conn, size.format(segment=seg_id[high["id"]])) == [(3,)]
        assert _rows(conn, size.format(segment=seg_id[low["id"]])) == [(2,)]
        # "Audience size change trend": dateadd, lag and the process log, as written; one day so far.
        trend = f"""SELECT date_key, Profiles_added FROM (SELECT rn_num, date_key,
            (count_of_profiles-lag(count_of_profiles, 1, 0) over(ORDER BY date_key))Profiles_added
            FROM (SELECT date_key, sum(x.count_of_profiles)count_of_profiles, row_number() OVER (ORDER BY date_key) rn_num
              FROM {Q}.adwh_fact_profile_by_segment_trendlines x
              INNER JOIN (SELECT MAX(process_date) last_process_date, merge_policy_id
                FROM {Q}.adwh_lkup_process_delta_log
                WHERE process_name = 'FACT_TABLES_PROCESSING' AND process_status = 'SUCCESSFUL'
                GROUP BY merge_policy_id) y ON x.merge_policy_id = y.merge_policy_id
              WHERE segment_id = {seg_id[high['id']]} AND x.date_key >= dateadd(DAY, -30 -1, y.last_process_date)
              GROUP BY x.date_key) a)b WHERE rn_num > 1;"""  # noqa: E501
        assert _rows(conn, trend) == []
        # "Most used destinations" and "Recently activated audiences".
        most_used = f"""SELECT {Q}.adwh_dim_destination.destination_name, {Q}.adwh_dim_destination.destination_id,
               {Q}.adwh_dim_destination.destination,
               count(DISTINCT {Q}.adwh_dim_br_segment_destinations.segment_id) segment_count
          FROM {Q}.adwh_dim_destination
          JOIN {Q}.adwh_dim_br_segment_destinations ON {Q}.adwh_dim_destination.destination_id = {Q}.adwh_dim_br_segment_destinations.destination_id
          WHERE {Q}.adwh_dim_destination.destination_name IS NOT NULL
          GROUP BY {Q}.adwh_dim_destination.destination_name, {Q}.adwh_dim_destination.destination,
                   {Q}.adwh_dim_destination.destination_id
          ORDER BY segment_count DESC LIMIT 20;"""  # noqa: E501
        (name, _, kind, segments), = _rows(conn, most_used)
        assert name.startswith("qsaccel activation") and kind == "Amazon S3" and segments == 2
        recent = _rows(conn, f"""SELECT segment_name, segment, destination_name, a.create_time create_time
            FROM {Q}.adwh_dim_br_segment_destinations a
            INNER JOIN {Q}.adwh_dim_segments b ON a.segment_id = b.segment_id
            INNER JOIN {Q}.adwh_dim_destination c ON a.destination_id = c.destination_id
            ORDER BY create_time DESC, segment LIMIT 20;""")
        assert sorted(r[0] for r in recent) == ["qsaccel high", "qsaccel low"]

        # Two more high-propensity profiles land; the next segment job refreshes today's snapshot.
        tenant = org["tenant"]
        platform = ensure_schemas(client)
        more = client.catalog.create_dataset("qsaccel more scores", platform.schema_id("score"), profile=True)
        import pyarrow as pa

        replace_rows(client, more["id"], [pa.table({f"_{tenant}": pa.StructArray.from_arrays(
            [pa.array(["qs-u6", "qs-u7"]), pa.array([0.95, 0.65])], names=["userid", "propensity"])})])
        assert _rows(conn, size.format(segment=seg_id[high["id"]])) == [(3,)]  # a snapshot, until the next job
        _segment_job(client, high["id"])
        assert _rows(conn, size.format(segment=seg_id[high["id"]])) == [(5,)]
        # Since the previous snapshot: two profiles entered the segment, three stayed, none left.
        assert _rows(conn, f"SELECT count_of_calculated_realized_profiles, count_of_calculated_existing_profiles, "
                           f"count_of_calculated_exited_profiles FROM {Q}.adwh_fact_profile_by_segment "
                           f"WHERE segment_id = {seg_id[high['id']]}") == [(2, 3, 0)]
        assert _rows(conn, profile_count) == [("Default timestamp-ordered", 8)]
        assert _rows(conn, f"SELECT count(*) FROM {Q}.adwh_lkup_process_delta_log") == [(2,)]
        assert _rows(conn, f"SELECT count(*) FROM {Q}.adwh_dim_date") == [(1,)]
        # The identity-overlap model: one namespace, so every profile is in the one combination.
        assert _rows(conn, f"SELECT o.overlap_namespaces, f.count_of_profiles FROM "
                           f"{Q}.adwh_fact_profile_overlap_of_namespace f JOIN {Q}.adwh_dim_overlap_namespaces o "
                           f"USING (overlap_id)") == [("ecid", 8)]


def test_the_reporting_model_is_read_only(org):
    with _connect(org["client"]) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="platform maintains"):
            _rows(conn, f"CREATE TABLE {Q}.my_copy AS SELECT 1 AS x")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _rows(conn, f"DROP TABLE {Q}.adwh_dim_segments")


def test_a_segment_job_ends_before_its_snapshot_and_whoever_reads_the_snapshot_waits_for_it(tmp_path):
    """The snapshot follows the job in the background; a reader (a qsaccel query, the next segment job) waits for
    the last one of its sandbox to be written, and another sandbox's reader does not."""
    import threading

    from aep_sandbox.config import SandboxConfig
    from aep_sandbox.platform import Platform
    from aep_sandbox.store import Scope

    platform = Platform(SandboxConfig(data_dir=tmp_path))
    started, release, written = threading.Event(), threading.Event(), []

    def snapshot(scope, _platform):
        started.set()
        release.wait(30)
        written.append(scope.sandbox)

    platform.segment_job_listeners.append(snapshot)
    scope, other = Scope(platform.store, "org@AdobeOrg", "dev"), Scope(platform.store, "org@AdobeOrg", "qa")
    platform.segment_job_ended(scope)  # returns while the snapshot is still being taken
    assert started.wait(30) and written == []
    platform.wait_for_segment_job_listeners(other)  # nothing pending there
    reader = threading.Thread(target=platform.wait_for_segment_job_listeners, args=(scope,))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and written == []  # still waiting for the snapshot
    release.set()
    reader.join(30)
    assert not reader.is_alive() and written == ["dev"]
    platform.shutdown()
