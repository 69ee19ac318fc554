"""Data Landing Zone contract (reference/aep_api.md §8.1; help/sources/tutorials/api/create/cloud-storage/
data-landing-zone.md): container info and credentials in AEP's Azure and AWS shapes, and exports landing there."""

import datetime as dt
import io

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient

from aep_assets.aep.flow import ExportTarget
from aep_sandbox.azurite import azurite_binary
from aep_sandbox.config import SandboxConfig
from aep_sandbox.process import SandboxProcess

from .conftest import client_for, replace_rows
from .contract import event_dataset, headers


def test_a_local_landing_zone_says_where_it_is(sandbox, client):
    found = client.landing_zone.container("dlz_destination")
    assert found["dlzProvider"] == "Local directory" and found["dlzPath"]["dlzFolder"] == "dlz-destination"
    assert found["dataTTL"] == {"timeUnit": "days", "timeQuantity": 7}
    assert "credentials" not in client.landing_zone.credentials("dlz_destination")


def test_an_s3_landing_zone_gives_credentials_an_aws_client_reads_exports_with(make_sandbox, s3_env):
    endpoint = s3_env["AWS_ENDPOINT_URL"]
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="sandbox-dlz")
    sb = make_sandbox("dlz", dlz="s3", env={**s3_env, "AEP_SANDBOX_DLZ_BUCKET": "sandbox-dlz",
                                            "AEP_SANDBOX_DLZ_ROLE_ARN": "arn:aws:iam::123456789012:role/dlz-reader"})
    client = client_for(sb)
    ds_id, tenant = event_dataset(client, "dlz export events")
    replace_rows(client, ds_id, [pa.table({
        "_id": ["d1", "d2"], "timestamp": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
        f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1", "u2"])], names=["userid"])})])
    flow, _ = client.flows.ensure_dataset_export_flow("dlz export", ds_id, ExportTarget(kind="dlz", path="exports"))
    client.flows.wait_for_run(client.flows.export_dataset_now(flow["id"], ds_id), timeout_s=30)

    info = client.landing_zone.container("dlz_destination")  # §8.1: AWS shape
    assert info["dlzProvider"] == "Amazon S3" and info["dlzPath"] == {"bucketName": "sandbox-dlz",
                                                                        "dlzFolder": "dlz-destination"}
    creds = client.landing_zone.credentials("dlz_destination")
    assert set(creds["credentials"]) == {"awsAccessKeyId", "awsSecretAccessKey", "awsSessionToken"}
    # Temporary keys of the role, scoped to the container's folder: never the keys the sandbox runs with.
    assert creds["credentials"]["awsAccessKeyId"] != s3_env["AWS_ACCESS_KEY_ID"]
    assert creds["credentials"]["awsSecretAccessKey"] != s3_env["AWS_SECRET_ACCESS_KEY"]
    assert creds["expiryTime"] > 0
    s3, bucket, folder = client.landing_zone.s3_client("dlz_destination", endpoint_url=endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{folder}/exports/{ds_id}/")["Contents"]]
    assert keys and all("/exportTime=" in k for k in keys)
    rows = sum(pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())).num_rows
               for k in keys if k.endswith(".parquet"))
    assert rows == 2
    refreshed = client.landing_zone.credentials("dlz_destination", refresh=True)
    assert refreshed["credentials"]["awsSessionToken"] != creds["credentials"]["awsSessionToken"]


def exported_rows(container, prefix: str) -> tuple[list[str], int]:
    """The export's files under ``prefix`` in an Azure container (each in AEP's exportTime= folder), and the rows
    of its Parquet files."""
    names = [b.name for b in container.list_blobs(name_starts_with=prefix)]
    assert names and all("/exportTime=" in n for n in names)
    return names, sum(pq.read_table(io.BytesIO(container.download_blob(n).readall())).num_rows
                      for n in names if n.endswith(".parquet"))


needs_azurite = pytest.mark.skipif(azurite_binary() is None, reason="Azurite is not installed (npm install -g azurite; "
                                                                    ".ci/run installs it)")


@needs_azurite
def test_an_azure_landing_zone_answers_in_aeps_shape_and_exports_land_in_its_container(make_sandbox):
    sb = make_sandbox("azure-dlz", dlz="azure")
    client = client_for(sb)
    ds_id, tenant = event_dataset(client, "azure dlz export events")
    replace_rows(client, ds_id, [pa.table({
        "_id": ["a1", "a2", "a3"], "timestamp": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
        f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1", "u2", "u3"])], names=["userid"])})])
    flow, _ = client.flows.ensure_dataset_export_flow("azure export", ds_id, ExportTarget(kind="dlz", path="exports"))
    client.flows.wait_for_run(client.flows.export_dataset_now(flow["id"], ds_id), timeout_s=30)

    # data-landing-zone.md, "Retrieve a usable landing zone": exactly these two keys.
    assert client.landing_zone.container("dlz_destination") == {"containerName": "dlz-destination",
                                                                 "containerTTL": "7"}
    assert client.landing_zone.container("user_drop_zone")["containerName"] == "dlz-user-container"
    # "Retrieve Data Landing Zone credentials": these five, the URI the container's plus the token.
    creds = client.landing_zone.credentials("dlz_destination")
    assert set(creds) == {"containerName", "SASToken", "storageAccountName", "SASUri", "expiryDate"}
    assert creds["SASUri"].split("?") == [f"{creds['SASUri'].split('?')[0]}", creds["SASToken"]]
    assert creds["SASUri"].split("?")[0].endswith(f"/{creds['storageAccountName']}/dlz-destination")
    token = dict(part.split("=", 1) for part in creds["SASToken"].split("&"))
    assert token["sr"] == "c" and token["si"].startswith("dlz-")  # scoped to the container, by a stored policy
    expiry = dt.date.fromisoformat(creds["expiryDate"])
    assert dt.date.today() < expiry <= dt.date.today() + dt.timedelta(days=8)
    assert client.landing_zone.credentials("dlz_destination")["SASToken"] == creds["SASToken"]  # stable until refresh

    # Microsoft's SDK with nothing but the SAS URI reads the export; the token reaches no other container.
    container = ContainerClient.from_container_url(creds["SASUri"])
    names, rows = exported_rows(container, f"exports/{ds_id}/")
    assert rows == 3
    elsewhere = ContainerClient.from_container_url(
        creds["SASUri"].replace("/dlz-destination?", "/dlz-user-container?"))
    with pytest.raises(HttpResponseError):
        list(elsewhere.list_blobs())

    # "Update Data Landing Zone credentials": a new token, and the old one stops working.
    refreshed = client.landing_zone.credentials("dlz_destination", refresh=True)
    assert refreshed["SASToken"] != creds["SASToken"]
    with pytest.raises(HttpResponseError):
        container.download_blob(names[0]).readall()
    assert ContainerClient.from_container_url(refreshed["SASUri"]).download_blob(names[0]).readall()
    # The pipeline's reader picks the Azure client from the answer's shape.
    reader = client.landing_zone.reader("dlz_destination")
    assert [n for n in reader.list(f"exports/{ds_id}/")] == names
    assert "sig=" not in reader.uri(names[0])


@needs_azurite
def test_azurite_is_the_default_landing_zone_when_installed_and_keeps_its_blobs_across_restarts(tmp_path):
    with SandboxProcess(tmp_path / "aep", env={"AEP_SANDBOX_DLZ": ""}) as sb:
        client = client_for(sb)
        assert "containerName" in client.landing_zone.container("user_drop_zone")
        ContainerClient.from_container_url(client.landing_zone.credentials("user_drop_zone")["SASUri"]).upload_blob(
            "in/profiles.csv", b"id\n1\n")
    with SandboxProcess(tmp_path / "aep", env={"AEP_SANDBOX_DLZ": ""}) as sb:
        sas = client_for(sb).landing_zone.credentials("user_drop_zone")["SASUri"]
        assert ContainerClient.from_container_url(sas).download_blob("in/profiles.csv").readall() == b"id\n1\n"


def test_without_azurite_the_landing_zone_falls_back_to_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("AEP_SANDBOX_AZURITE", "off")
    monkeypatch.delenv("AEP_SANDBOX_DLZ", raising=False)
    monkeypatch.delenv("AEP_SANDBOX_DLZ_BUCKET", raising=False)
    assert SandboxConfig(data_dir=tmp_path).dlz == "local"
    with pytest.raises(ValueError, match="npm install -g azurite"):
        SandboxConfig(data_dir=tmp_path, dlz="azure")
    monkeypatch.setenv("AEP_SANDBOX_AZURITE", "/opt/azurite/bin/azurite-blob")
    assert SandboxConfig(data_dir=tmp_path).dlz == "azure"
    assert SandboxConfig(data_dir=tmp_path, dlz_bucket="b").dlz == "s3"
    assert SandboxConfig(data_dir=tmp_path, landing_zone_dir=tmp_path / "lz").dlz == "local"


def test_an_s3_landing_zone_without_a_role_hands_out_no_credentials(make_sandbox, s3_env):
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1").create_bucket(
        Bucket="norole-dlz")
    sb = make_sandbox("dlz no role", dlz="s3", env={**s3_env, "AEP_SANDBOX_DLZ_BUCKET": "norole-dlz"})
    r = requests.get(f"{sb.url}/data/foundation/connectors/landingzone/credentials",
                     params={"type": "dlz_destination"}, headers=headers(client_for(sb)))
    assert r.status_code == 403 and "AEP_SANDBOX_DLZ_ROLE_ARN" in r.text
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in r.text


def test_an_s3_destination_without_its_keys_writes_nothing_with_the_hosts(make_sandbox, s3_env):
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="callers-choice")
    sb = make_sandbox("s3 no keys", env=s3_env)
    client = client_for(sb)
    ds_id, tenant = event_dataset(client, "keyless export events")
    replace_rows(client, ds_id, [pa.table({
        "_id": ["k1"], "timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
        f"_{tenant}": pa.StructArray.from_arrays([pa.array(["u1"])], names=["userid"])})])
    target = ExportTarget(kind="s3", path="stolen", bucket="callers-choice", access_key="", secret_key="")
    with pytest.raises(Exception, match="s3AccessKey"):
        flow, _ = client.flows.ensure_dataset_export_flow("keyless export", ds_id, target)
        client.flows.wait_for_run(client.flows.export_dataset_now(flow["id"], ds_id), timeout_s=30)
    assert "Contents" not in s3.list_objects_v2(Bucket="callers-choice")
