"""Adobe I/O gateway contract (reference/aep_api.md §1.3, §11.1): tokens, API key, org, request ids, sandboxes."""

import requests

from aep_assets.pipeline.platform import ensure_schemas
from aep_assets.sandbox.server import SandboxProcess

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
