"""Names that become SQL are quoted, never formatted: a crafted attribute path in an activation's
profileSelectors or an export job's fields is a (strange) field name, not SQL, and the client secret
never reaches a file."""

import pytest

from aep_assets.aep.flow import ExportTarget
from aep_assets.aep.polling import poll
from aep_assets.pipeline.schemas import ensure_schemas
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .contract import scored_profiles

UPS = "/data/core/ups"


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory):
    """A sandbox of this module's: its profiles must not join other tests' audiences."""
    with SandboxProcess(tmp_path_factory.mktemp("injection")) as sb:
        yield sb


@pytest.fixture(scope="module")
def scored(own_sandbox):
    client = client_for(own_sandbox)
    tenant = scored_profiles(client, "injection scores", [f"inj-u{i}" for i in range(4)], [0.2, 0.4, 0.6, 0.8])
    segment, _ = client.segmentation.ensure_segment("injection audience", f"_{tenant}.propensity >= 0.5")
    client.segmentation.evaluate([segment["id"]], timeout_s=30)
    return client, tenant, segment


def crafted(sandbox, tenant: str) -> list[str]:
    secret = sandbox.data_dir / "credentials.json"
    return [f'_{tenant}.propensity" AS x, (SELECT content FROM read_text(\'{secret}\')) AS "y',
            f"_{tenant}.propensity') UNION SELECT content FROM read_text('{secret}') --",
            'a"."b']


def _files_hold(root, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", ".parquet", ".json")
            and p.name != "credentials.json" and needle.encode() in p.read_bytes()]


def test_a_crafted_profile_selector_path_exports_no_secret(own_sandbox, scored):
    sandbox = own_sandbox
    client, tenant, segment = scored
    attributes = [f"_{tenant}.propensity", *crafted(sandbox, tenant)]
    flow, _ = client.flows.ensure_audience_flow("injection activation", [segment],
                                                ExportTarget(kind="dlz", path="injection"), attributes)
    runs = client.flows.activate_audiences_now(flow["id"], [segment["id"]])
    done = [client.flows.wait_for_run(run, timeout_s=30) for run in runs.values()]
    assert all(r["metrics"]["statusSummary"]["status"] in ("success", "failed") for r in done)
    assert _files_hold(sandbox.data_dir, sandbox.credentials.client_secret) == []


def test_crafted_export_job_fields_export_no_secret(own_sandbox, scored):
    sandbox = own_sandbox
    client, tenant, segment = scored
    target = client.catalog.create_dataset("injection export target", ensure_schemas(client).schema_id("score"))
    for field in crafted(sandbox, tenant):
        job = client.session.json("POST", f"{UPS}/export/jobs", json={
            "fields": f"identities.id,_{tenant}.propensity,{field}", "mergePolicy": {"id": "default", "version": 1},
            "filter": {"segments": [{"segmentId": segment["id"], "segmentNs": "ups", "status": ["realized"]}]},
            "destination": {"datasetId": target["id"], "segmentPerBatch": False},
            "schema": {"name": "_xdm.context.profile"}, "evaluationInfo": {"segmentation": True}})
        poll(lambda _wait, j=job: client.session.json("GET", f"{UPS}/export/jobs/{j['id']}"),
             lambda j: j["status"] in ("SUCCEEDED", "FAILED"), what="export job", timeout_s=30)
    assert _files_hold(sandbox.data_dir, sandbox.credentials.client_secret) == []
