"""Secrets at rest and in reprs: owner-only files, hashed tokens, the IMS secret only in the form body."""

import sqlite3
import stat

import requests

from aep_assets.aep.flow import ExportTarget
from aep_sandbox.config import Credentials


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_credentials_and_the_metadata_database_are_owner_only(make_sandbox):
    sb = make_sandbox("secrets")
    assert _mode(sb.data_dir / "credentials.json") == 0o600
    assert _mode(sb.data_dir / "meta.sqlite") == 0o600


def test_tokens_are_stored_as_hashes(make_sandbox):
    sb = make_sandbox("tokens")
    creds = sb.credentials
    token = requests.post(f"{sb.url}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret,
        "scope": "openid"}).json()["access_token"]
    with sqlite3.connect(sb.data_dir / "meta.sqlite") as db:
        stored = [row[0] for row in db.execute("SELECT token FROM tokens")]
    assert stored and token not in stored and all(s.startswith("sha256:") for s in stored)
    r = requests.get(f"{sb.url}/data/foundation/catalog/dataSets", headers={
        "Authorization": f"Bearer {stored[0]}", "x-api-key": creds.client_id, "x-gw-ims-org-id": creds.org_id})
    assert r.status_code == 401  # the stored hash is not a token


def test_ims_takes_the_secret_only_in_the_form_body(make_sandbox):
    sb = make_sandbox("ims")
    creds = sb.credentials
    r = requests.post(f"{sb.url}/ims/token/v3", params={
        "grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret})
    assert r.status_code == 400 and "x-www-form-urlencoded body" in r.json()["error_description"]


def test_no_class_that_holds_a_secret_shows_it():
    creds = Credentials(client_id="id", client_secret="s3cr3t-in-repr", org_id="o@AdobeOrg", tenant_id="t")
    target = ExportTarget(kind="s3", path="p", bucket="b", access_key="AKIA-in-repr", secret_key="s3cr3t-too")
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in repr(target) and "AKIA" not in repr(target)
