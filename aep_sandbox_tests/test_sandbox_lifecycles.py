"""Asynchronous lifecycles paced from configuration (moto's ManagedState): with ``manual:N`` an object shows
its first state for exactly N reads, then its work runs; no test waits on a timer to see a state."""

import json

import pytest

from aep_assets.aep.flow import ExportTarget
from aep_assets.aep.polling import poll
from aep_sandbox.lifecycle import Pace, parse_paces

from .conftest import client_for
from .contract import event_dataset, ingest_json, records, scored_profiles

HELD = "batch=manual:2,query=manual:2,segment_job=manual:2,export_job=manual:2,flow_run=manual:2"


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    from aep_sandbox.process import SandboxProcess

    with SandboxProcess(tmp_path_factory.mktemp("paced"), lifecycles=HELD, dlz="local") as sb:
        yield client_for(sb)


def _reads(read, n: int) -> list[str]:
    return [read() for _ in range(n)]


def test_a_batch_stays_staging_for_two_reads_then_lands(paced):
    ds_id, tenant = event_dataset(paced, "paced events")
    batch = paced.ingestion.create_batch(ds_id, "json")
    lines = "\n".join(json.dumps(r) for r in records(tenant)).encode()
    paced.ingestion.upload_file(batch["id"], ds_id, "e.json", lines)
    paced.ingestion.complete_batch(batch["id"])
    status = lambda: paced.catalog.get_batch(batch["id"])["status"]  # noqa: E731
    assert _reads(status, 2) == ["staging", "staging"]
    assert poll(lambda _wait: paced.catalog.get_batch(batch["id"]), lambda b: b["status"] == "success",
                what="batch", timeout_s=30)["metrics"]["outputRecordCount"] == 3


def test_a_query_stays_submitted_for_two_reads_then_runs(paced):
    q = paced.query.submit("SELECT 1 AS one", name="paced")
    assert _reads(lambda: paced.query.get(q["id"])["state"], 2) == ["SUBMITTED", "SUBMITTED"]
    assert paced.query.wait(q["id"], timeout_s=30)["state"] == "SUCCESS"


def test_a_read_that_prefers_to_wait_is_answered_when_the_work_ends(paced):
    """RFC 7240's Prefer: wait. A held object is answered at once (its reads still count); once its work runs,
    the read waits for it, so the client sees the query finished in one read instead of polling for it."""
    q = paced.query.submit("SELECT count(*) AS n FROM generate_series(1, 20000000)", name="held read")
    path, prefer = f"/data/foundation/query/queries/{q['id']}", {"Prefer": "wait=60"}
    held = [paced.session.request("GET", path, headers=prefer) for _ in range(2)]
    assert [r.json()["state"] for r in held] == ["SUBMITTED", "SUBMITTED"]
    assert not any("Preference-Applied" in r.headers for r in held)
    assert paced.session.request("GET", path, headers=prefer).json()["state"] == "SUCCESS"


def test_segment_and_export_jobs_stay_new_for_two_reads(paced):
    tenant = scored_profiles(paced, "paced scores", ["a", "b", "c"], [0.2, 0.6, 0.9])
    seg, _ = paced.segmentation.ensure_segment("paced high", f"_{tenant}.propensity > 0.5")
    job = paced.segmentation.create_job([seg["id"]])
    state = lambda: paced.session.json("GET", f"/data/core/ups/segment/jobs/{job['id']}")["status"]  # noqa: E731
    assert _reads(state, 2) == ["NEW", "NEW"]
    assert paced.segmentation.wait_for_job(job["id"], timeout_s=30)["metrics"]["segmentedProfileCounter"] == {
        seg["id"]: 2}


def test_a_flow_run_is_in_progress_for_two_reads_and_a_held_one_never_moves(paced, make_sandbox):
    ds_id, tenant = event_dataset(paced, "paced export events")
    ingest_json(paced, ds_id, "\n".join(json.dumps(r) for r in records(tenant)).encode())
    flow, _ = paced.flows.ensure_dataset_export_flow("paced export", ds_id, ExportTarget(kind="dlz", path="paced"))
    run_id = paced.flows.export_dataset_now(flow["id"], ds_id)
    status = lambda: paced.session.json(  # noqa: E731
        "GET", f"/data/foundation/flowservice/runs/{run_id}")["items"][0]["metrics"]["statusSummary"]["status"]
    assert _reads(status, 2) == ["inProgress", "inProgress"]
    assert paced.flows.wait_for_run(run_id, timeout_s=30)["metrics"]["statusSummary"]["status"] == "success"

    held = client_for(make_sandbox("held", lifecycles="segment_job=manual:1000000"))
    tenant = scored_profiles(held, "held scores", ["a"], [0.9])
    seg, _ = held.segmentation.ensure_segment("held", f"_{tenant}.propensity > 0.5")
    job = held.segmentation.create_job([seg["id"]])
    reads = {held.session.json("GET", f"/data/core/ups/segment/jobs/{job['id']}")["status"] for _ in range(50)}
    assert reads == {"NEW"}


def test_paces_are_parsed_with_a_clear_error():
    assert parse_paces("batch=manual:3, query=delay:1.5") == {"batch": Pace("manual", reads=3),
                                                                "query": Pace("delay", seconds=1.5)}
    assert parse_paces("") == {} and Pace.parse("immediate") == Pace()
    with pytest.raises(ValueError, match="'manual:N'"):
        Pace.parse("manual:0")
    with pytest.raises(ValueError, match="not one of batch, query"):
        parse_paces("batches=manual:1")
