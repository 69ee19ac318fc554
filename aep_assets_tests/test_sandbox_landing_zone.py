"""Data Landing Zone contract (reference/aep_api.md §8.1): container info and credentials in AEP's AWS shape."""

import io

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from aep_assets.aep.flow import ExportTarget

from .conftest import client_for, replace_rows
from .contract import event_dataset


def test_a_local_landing_zone_says_where_it_is(sandbox, client):
    found = client.landing_zone.container("dlz_destination")
    assert found["dlzProvider"] == "Local directory" and found["dlzPath"]["dlzFolder"] == "dlz-destination"
    assert found["dataTTL"] == {"timeUnit": "days", "timeQuantity": 7}
    assert "credentials" not in client.landing_zone.credentials("dlz_destination")


def test_an_s3_landing_zone_gives_credentials_an_aws_client_reads_exports_with(make_sandbox, s3_env):
    endpoint = s3_env["AWS_ENDPOINT_URL"]
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="sandbox-dlz")
    sb = make_sandbox("dlz", env={**s3_env, "AEP_SANDBOX_DLZ_BUCKET": "sandbox-dlz"})
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
    assert creds["expiryTime"] > 0
    s3, bucket, folder = client.landing_zone.s3_client("dlz_destination", endpoint_url=endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{folder}/exports/{ds_id}/")["Contents"]]
    assert keys and all("/exportTime=" in k for k in keys)
    rows = sum(pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())).num_rows
               for k in keys if k.endswith(".parquet"))
    assert rows == 2
    refreshed = client.landing_zone.credentials("dlz_destination", refresh=True)
    assert refreshed["credentials"]["awsSessionToken"] != creds["credentials"]["awsSessionToken"]
