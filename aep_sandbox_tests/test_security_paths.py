"""Names that become paths stay inside their roots: file names, sandbox names, PostgreSQL dbnames,
export paths and file name templates. Each attack is refused with a 400 in AEP's shape (or a FATAL
SQLSTATE error over PostgreSQL) and writes or deletes nothing outside the data directory."""

import psycopg
import pytest
import requests

from .contract import event_dataset, headers


def _batch(client, ds_id: str) -> str:
    return client.session.json("POST", "/data/foundation/import/batches", json={
        "datasetId": ds_id, "inputFormat": {"format": "parquet"}})["id"]


@pytest.fixture
def victim(tmp_path):
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    return folder


def _aep_error(r: requests.Response) -> dict:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == 400 and body["type"].startswith("http://ns.adobe.com/aep/errors/")
    return body


@pytest.mark.parametrize("name", ["..%2F..%2F..%2F..%2F..%2Fvictim", "..%2Fx.parquet", "%2Fetc%2Fpasswd",
                                  "..", ".chunks"])
def test_a_chunked_upload_file_name_cannot_leave_its_batch(sandbox, client, victim, name):
    ds_id, _ = event_dataset(client, "path attack")
    batch_id = _batch(client, ds_id)
    url = f"{sandbox.url}/data/foundation/import/batches/{batch_id}/datasets/{ds_id}/files/{name}"
    h = {**headers(client), "Content-Type": "application/octet-stream"}
    for method, extra in (("POST", {"params": {"action": "INITIALIZE"}}),
                          ("PATCH", {"data": b"x" * 10, "headers": {**h, "Content-Range": "bytes 0-9"}}),
                          ("PUT", {"data": b"payload"})):
        r = requests.request(method, url, **{"headers": h, **extra})
        assert r.status_code in (400, 404), (method, r.status_code, r.text)
        if r.status_code == 400:
            assert "File name" in _aep_error(r)["detail"] or "leads outside" in r.json()["detail"]
    assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (victim / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("name", ["../../../x", "/tmp/x", "Prod", "a/b", ".."])
def test_a_sandbox_name_that_is_a_path_is_refused(sandbox, client, name):
    r = requests.get(f"{sandbox.url}/data/foundation/catalog/dataSets", headers={**headers(client),
                                                                               "x-sandbox-name": name})
    assert "Sandbox name" in _aep_error(r)["detail"]
    assert not list(sandbox.data_dir.parent.glob("x")) and not (sandbox.data_dir / "x").exists()


def test_a_postgresql_dbname_that_is_a_path_is_refused(sandbox, client):
    p = client.query.connection_parameters()
    with pytest.raises(psycopg.OperationalError, match="Sandbox name"):
        psycopg.connect(host=p["host"], port=p["port"], dbname="../../../x:all", user=p["username"],
                        password=p["token"])
    assert not (sandbox.data_dir.parent / "x").exists()


def _target(client, path: str) -> requests.Response:
    spec = client.flows.spec_id("connectionSpecs", "Data Landing Zone")
    return requests.post(f"{client.config.platform_url}/data/foundation/flowservice/targetConnections",
                         headers=headers(client), json={
                             "name": f"escape {path}", "connectionSpec": {"id": spec, "version": "1.0"},
                             "data": {"format": "parquet"}, "params": {"path": path}})


@pytest.mark.parametrize("path", ["../../../../x", "a/../../b", "ok/../.."])
def test_an_export_path_cannot_leave_the_landing_zone(client, path):
    assert "params.path" in _aep_error(_target(client, path))["detail"]


def test_a_plain_export_path_is_accepted(client):
    assert _target(client, "exports/daily").status_code in (200, 201)


@pytest.mark.parametrize("template", ["../../%SEGMENT_ID%", "a/b_%SEGMENT_ID%", "%SEGMENT_ID%\\..\\x"])
def test_a_file_name_template_with_a_path_is_refused(client, template):
    spec = client.flows.spec_id("flowSpecs", "Data Landing Zone")
    r = requests.post(f"{client.config.platform_url}/data/foundation/flowservice/flows", headers=headers(client),
                      json={"name": "escape template", "flowSpec": {"id": spec, "version": "1.0"},
                            "sourceConnectionIds": ["s"], "targetConnectionIds": ["t"],
                            "transformations": [{"name": "GeneralTransform", "params": {"segmentSelectors": {
                                "selectors": [{"type": "PLATFORM_SEGMENT", "value": {
                                    "id": "seg", "filenameTemplate": template}}]}}}]})
    assert "filenameTemplate" in _aep_error(r)["detail"]
