"""Storage on a real S3 API (moto's server), and the whole graph with S3 storage."""

import json

import boto3
import dagster as dg
import polars as pl
import pytest

from aep_assets.resources import S3StorageResource, build_resources, local_mlflow

from .demo import ALL_ASSETS
from .test_pipeline_e2e import RUN_CONFIG


def _bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


def test_s3_storage_round_trips_bytes_and_parquet(s3_env):
    _bucket(s3_env["AWS_ENDPOINT_URL"], "roundtrip")
    resources = build_resources({**s3_env, "AEP_STORAGE": "s3", "AEP_S3_BUCKET": "roundtrip", "AEP_S3_PREFIX": "p"})
    assert isinstance(resources["storage"], S3StorageResource)
    store = resources["storage"].get()
    frame = pl.DataFrame({"a": [1, 2, 3]})
    assert store.write_parquet("x/f.parquet", frame) == "s3://roundtrip/p/x/f.parquet"
    store.write_bytes("x/g.json", b"{}")
    assert store.list_keys("x") == ["x/f.parquet", "x/g.json"]
    assert store.read_parquet(["x/f.parquet"]).equals(frame)
    assert store.exists("x/g.json") and not store.exists("x/h.json")
    with pytest.raises(FileNotFoundError, match="s3://roundtrip/p/x/h.json"):
        store.read_bytes("x/h.json")  # a missing key reads as a missing local file does


def test_whole_graph_with_s3_storage(s3_env, tmp_path):
    _bucket(s3_env["AWS_ENDPOINT_URL"], "aep-e2e")
    resources = {**build_resources({**s3_env, "AEP_STORAGE": "s3", "AEP_S3_BUCKET": "aep-e2e",
                                    "AEP_SANDBOX_DIR": str(tmp_path / "aep")}),
                 "mlflow": local_mlflow(tmp_path)}  # this test's own registry, not the one under data/
    with dg.instance_for_test() as instance:
        assert dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG).success
        export = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", "training_export"]))
        uri = export.asset_materialization.metadata["dagster/uri"].value
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="aep-e2e")["Contents"]]
    assert uri.startswith("s3://aep-e2e/aep_assets/aep_assets/cmle_demo/training/")
    assert any("/exportTime=" in k and k.endswith(".gz.parquet") for k in keys)  # written by AEP's S3 destination
    pointer = s3.get_object(Bucket="aep-e2e", Key="aep_assets/cmle_demo/scores/current.json")["Body"].read()
    scores_key = json.loads(pointer)["key"]
    assert any(k.endswith(scores_key) for k in keys)
    audience_files = [k for k in keys if "/audiences/" in k and k.endswith(".csv")]
    assert len(audience_files) == 3
    scores = pl.read_parquet(s3.get_object(Bucket="aep-e2e", Key=f"aep_assets/{scores_key}")["Body"].read())
    assert sum(pl.read_csv(s3.get_object(Bucket="aep-e2e", Key=k)["Body"].read()).height
               for k in audience_files) == scores.filter(pl.col("group") == "treatment").height  # controls held out


def test_whole_graph_reading_exports_from_an_s3_landing_zone(s3_env, tmp_path):
    # Exports go to AEP's DLZ; the pipeline reads them there with the credentials AEP issues.
    _bucket(s3_env["AWS_ENDPOINT_URL"], "aep-dlz")
    resources = build_resources({**s3_env, "AEP_EXPORTS": "dlz", "AEP_SANDBOX_DLZ_BUCKET": "aep-dlz",
                                 "AEP_SANDBOX_DLZ_ROLE_ARN": "arn:aws:iam::123456789012:role/aep-dlz-reader",
                                 "AEP_SANDBOX_DIR": str(tmp_path / "aep"), "AEP_STORAGE_DIR": str(tmp_path / "files")})
    with dg.instance_for_test() as instance:
        assert dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG).success
        export = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", "training_export"]))
        uri = export.asset_materialization.metadata["dagster/uri"].value
    assert uri.startswith("s3://aep-dlz/dlz-destination/aep_assets/cmle_demo/training/")
    assert not (tmp_path / "files" / "landing-zone").exists()  # nothing exported to a local directory
    assert (tmp_path / "files" / "cmle_demo" / "models").is_dir()  # the pipeline's own files stay in its storage
