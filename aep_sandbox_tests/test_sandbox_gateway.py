"""Adobe I/O gateway contract (reference/aep_api.md §1.3, §11.1): tokens, API key, org, request ids, sandboxes."""

import requests

from aep_assets.pipeline.schemas import ensure_schemas
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .contract import headers


def test_gateway_rejects_a_missing_token_with_adobe_io_body(sandbox):
    # §11.1 (1): Adobe I/O gateway errors.
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets")
    assert r.status_code == 401 and r.json() == {"error_code": "403010", "message": "Oauth token is missing"}


def test_gateway_rejects_an_invalid_token(sandbox, client):
    h = headers(client, Authorization="Bearer nope")
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=h)
    assert r.status_code == 401 and r.json()["error_code"] == "401013"


def test_gateway_requires_the_api_key(sandbox, client):
    h = headers(client)
    del h["x-api-key"]
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers=h)
    assert r.status_code == 403 and r.json()["error_code"] == "403000"


def test_every_response_carries_a_request_id(sandbox, client):
    r = requests.get(f"{sandbox.url}/data/foundation/schemaregistry/stats", headers=headers(client))
    assert r.status_code == 200 and r.headers["x-request-id"]
    assert r.json()["tenantId"] == "aepsandbox"  # §3.2


def test_unknown_path_is_a_404(sandbox, client):
    r = requests.get(f"{sandbox.url}/data/foundation/nothing", headers=headers(client))
    assert r.status_code == 404


def test_two_sandbox_processes_share_one_data_directory(sandbox):
    first = client_for(sandbox)
    schema_id = ensure_schemas(first).schema_id("event")
    with SandboxProcess(sandbox.data_dir) as second_process:
        second = client_for(second_process)
        ds = second.catalog.create_dataset("shared across processes", schema_id)
        assert first.catalog.get_dataset(ds["id"])["name"] == "shared across processes"
        assert second.schemas.tenant_id() == first.schemas.tenant_id()


def test_resources_are_isolated_by_sandbox_name(sandbox, client):
    # §1.3: x-sandbox-name scopes every resource.
    dev = client_for(sandbox, sandbox_name="dev")
    schema_id = ensure_schemas(dev).schema_id("event")
    dev.catalog.create_dataset("only in dev", schema_id)
    assert dev.catalog.find_dataset("only in dev") is not None
    assert client.catalog.find_dataset("only in dev") is None


def _fault_sequence(sb, headers: dict, n: int = 40) -> list[int]:
    return [requests.get(f"{sb.url}/data/foundation/catalog/dataSets", headers=headers,
                         params={"limit": 1}).status_code for _ in range(n)]


def test_faults_at_a_rate_replay_with_their_seed(make_sandbox):
    """A failing fault run can be replayed: the same seed draws the same faults for the same requests, and the
    sandbox's log names the seed a run used."""
    faults = [{"status": 503, "rate": 0.5, "path": "/catalog/dataSets"}]
    runs = []
    for name, seed in (("seeded_a", 7), ("seeded_b", 7), ("seeded_c", 8)):
        sb = make_sandbox(name, faults=faults, fault_seed=seed)
        runs.append((sb, _fault_sequence(sb, _headers_for(sb))))
    (a, first), (_, replay), (_, other) = runs
    assert first == replay and first != other
    assert {503, 200} == set(first)
    assert "--fault-seed 7" in a._log.read_text()


def _headers_for(sb) -> dict:
    creds = sb.credentials
    token = requests.post(f"{sb.url}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret,
        "scope": "openid"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "x-api-key": creds.client_id, "x-gw-ims-org-id": creds.org_id,
            "x-sandbox-name": "prod"}
