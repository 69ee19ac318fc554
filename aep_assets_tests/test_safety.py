"""On a real org: the sandbox is named, production needs an explicit opt-in, and the target is said."""

import logging

import pytest

from aep_assets.aep.errors import ServerError
from aep_assets.resources import AdobeAEP, build_resources, describe_target


def _adobe(sandbox, name: str, **kwargs) -> AdobeAEP:
    creds = sandbox.credentials
    return AdobeAEP(client_id=creds.client_id, client_secret=creds.client_secret, org_id=creds.org_id,
                    platform_url=sandbox.url, ims_url=sandbox.url, sandbox_name=name, **kwargs)


def test_a_production_sandbox_is_refused_without_the_opt_in(sandbox):
    # Sandbox Management says 'prod' is of type production, as an org's default sandbox is.
    with pytest.raises(PermissionError, match="'prod' is a production sandbox.*AEP_ALLOW_PRODUCTION=1"):
        _adobe(sandbox, "prod").client()
    assert _adobe(sandbox, "prod", allow_production=True).client().sandboxes.get("prod")["type"] == "production"


def test_a_development_sandbox_needs_no_opt_in(sandbox):
    client = _adobe(sandbox, "dev-propensity").client()
    assert client.sandboxes.get("dev-propensity")["type"] == "development"


def test_a_client_with_limits_is_that_patient_from_its_first_request(make_sandbox):
    # A sensor's tick must answer quickly: the sandbox check, the first request, retries once, not six times.
    faulty = make_sandbox(faults=[{"status": 503, "path": "/data/foundation/sandbox-management/", "times": 2,
                                   "retry_after": 0}])
    with pytest.raises(ServerError):
        _adobe(faulty, "dev-propensity").client_with_limits(timeout_s=5, max_retries=1)
    # the two faults are spent: the next tick's client gets through, as patient as it was asked to be
    assert _adobe(faulty, "dev-propensity").client_with_limits(timeout_s=5, max_retries=1).config.max_retries == 1


def test_the_opt_in_comes_from_the_environment():
    env = {"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s", "AEP_ORG_ID": "o@AdobeOrg", "AEP_SANDBOX_NAME": "prod"}
    assert build_resources(env)["aep"].allow_production is False
    assert build_resources({**env, "AEP_ALLOW_PRODUCTION": "1"})["aep"].allow_production is True


def test_the_target_org_and_sandbox_are_said_without_the_secret(monkeypatch):
    env = {"AEP_CLIENT_ID": "id", "AEP_CLIENT_SECRET": "s3cr3t-value", "AEP_ORG_ID": "ABC@AdobeOrg",
           "AEP_SANDBOX_NAME": "dev"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    said = describe_target(build_resources(env))
    assert said == "AEP org ABC@AdobeOrg, sandbox 'dev' at https://platform.adobe.io"
    assert "s3cr3t" not in said
    local = describe_target(build_resources({}))
    assert local.startswith("the local AEP sandbox in ") and "sandbox 'prod'" in local


def test_every_run_logs_where_it_writes(sandbox, caplog):
    caplog.set_level(logging.INFO)
    _adobe(sandbox, "dev-propensity").client()
    assert "writing to AEP org" in caplog.text and "sandbox 'dev-propensity'" in caplog.text
