"""Segmentation contract (reference/aep_api.md §9): the Audiences API, merge policies, export jobs."""

import pytest
import requests

from aep_assets.aep import errors
from aep_assets.aep.polling import poll
from aep_assets.pipeline.schemas import SCORE_FIELDS, ensure_schemas

from .conftest import client_for
from .contract import headers, scored_profiles

UPS = "/data/core/ups"


@pytest.fixture(scope="module")
def scored(sandbox):
    """Five profiles with a propensity in a profile-enabled dataset."""
    client = client_for(sandbox)
    users = [f"seg-u{i}" for i in range(5)]
    tenant = scored_profiles(client, "segmentation scores", users, [0.1, 0.3, 0.5, 0.7, 0.9])
    assert "propensity" in SCORE_FIELDS
    return client, tenant, users


def _audience(client, tenant: str, name: str, pql: str) -> dict:
    return client.session.json("POST", f"{UPS}/audiences", json={
        "name": name, "type": "SegmentDefinition", "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": pql}, "labels": ["core/C1"]})


def test_an_audience_is_a_segment_definition_under_the_newer_api(scored, sandbox):
    client, tenant, _ = scored
    audience = _audience(client, tenant, "api audience high", f"_{tenant}.propensity >= 0.6")
    assert audience["id"] == audience["audienceId"] and audience["namespace"] == "AEPSegments"
    assert audience["originName"] == "REAL_TIME_CUSTOMER_PROFILE" and audience["labels"] == ["core/C1"]
    assert client.segmentation.find_segment("api audience high")["id"] == audience["id"]
    listed = client.session.json("GET", f"{UPS}/audiences", params={"property": f"audienceId=={audience['id']}"})
    assert [a["name"] for a in listed["children"]] == ["api audience high"] and listed["_page"]["totalCount"] == 1
    r = requests.delete(f"{sandbox.url}{UPS}/audiences/{audience['id']}", headers=headers(client))
    assert r.status_code == 204
    assert requests.get(f"{sandbox.url}{UPS}/audiences/{audience['id']}", headers=headers(client)).status_code == 404


def test_the_default_merge_policy_is_timestamp_ordered(scored):
    client, *_ = scored
    policies = client.session.json("GET", f"{UPS}/config/mergePolicies")["children"]
    assert len(policies) == 1 and policies[0]["default"] is True
    assert policies[0]["attributeMerge"] == {"type": "timestampOrdered"}
    assert client.session.json("GET", f"{UPS}/config/mergePolicies/{policies[0]['id']}") == policies[0]


def test_an_export_job_writes_the_members_fields_into_a_dataset(scored):
    client, tenant, users = scored
    audience = _audience(client, tenant, "export audience", f"_{tenant}.propensity >= 0.4")
    platform = ensure_schemas(client)
    target = client.catalog.create_dataset("segment export target", platform.schema_id("score"))
    job = client.session.json("POST", f"{UPS}/export/jobs", json={
        "fields": f"identities.id,_{tenant}.propensity", "mergePolicy": {"id": "default", "version": 1},
        "filter": {"segments": [{"segmentId": audience["id"], "segmentNs": "ups", "status": ["realized"]}]},
        "destination": {"datasetId": target["id"], "segmentPerBatch": False},
        "schema": {"name": "_xdm.context.profile"}, "evaluationInfo": {"segmentation": True}})
    assert isinstance(job["id"], int) and job["status"] == "NEW"
    done = poll(lambda _wait: client.session.json("GET", f"{UPS}/export/jobs/{job['id']}"),
                lambda j: j["status"] in ("SUCCEEDED", "FAILED"), what="export job", timeout_s=30)
    assert done["status"] == "SUCCEEDED" and done["metrics"]["totalExportedProfileCounter"] == 3
    batch = client.catalog.get_batch(done["destination"]["batchId"])
    assert batch["status"] == "success" and batch["metrics"]["recordsWritten"] == 3
    q = client.query.run(f"CREATE TABLE export_check AS SELECT _{tenant}.userid AS userid, _{tenant}.propensity AS p "
                         f"FROM {client.catalog.table_name(target)}", name="export check")
    assert q["rowCount"] == 3


def test_the_client_exports_members_and_finds_audiences(scored):
    client, tenant, _ = scored
    audience = _audience(client, tenant, "client export audience", f"_{tenant}.propensity < 0.2")
    target = client.catalog.create_dataset("client export target", ensure_schemas(client).schema_id("score"))
    job = client.segmentation.export_members([audience["id"]], target["id"], [f"_{tenant}.propensity"])
    assert job["metrics"]["totalExportedProfileCounter"] == 1
    assert [a["id"] for a in client.segmentation.audiences("client export audience")] == [audience["id"]]


def test_an_export_job_needs_a_known_dataset_and_segments(scored):
    client, *_ = scored
    with pytest.raises(errors.BadRequest, match="destination.datasetId"):
        client.session.json("POST", f"{UPS}/export/jobs", json={"filter": {"segments": [{"segmentId": "x"}]}})


def test_a_profile_dataset_holding_only_some_fields_does_not_break_segments(make_sandbox):
    """Ingestion keeps the fields a file sends; a profile fragment without the segment's field is a profile the
    segment does not match, not an error."""
    import pyarrow as pa

    from .conftest import replace_rows

    client = client_for(make_sandbox("partial-profiles"))
    tenant = scored_profiles(client, "full scores", ["p1", "p2"], [0.9, 0.1])
    partial = client.catalog.create_dataset("ids only", ensure_schemas(client).schema_id("score"), profile=True)
    replace_rows(client, partial["id"], [pa.table({f"_{tenant}": pa.StructArray.from_arrays(
        [pa.array(["p3"])], names=["userid"])})])
    high, _ = client.segmentation.ensure_segment("partial high", f"_{tenant}.propensity >= 0.5")
    job = client.segmentation.wait_for_job(client.segmentation.create_job([high["id"]])["id"], timeout_s=30)
    assert job["status"] == "SUCCEEDED" and job["metrics"]["segmentedProfileCounter"] == {high["id"]: 1}
    assert job["metrics"]["totalProfiles"] == 3
