"""No secret anywhere: the whole graph runs as a deployment would (``dagster job execute`` on a real instance,
real AEP mode against the sandbox over HTTP, S3 storage on moto, MLflow with a token), with recognisable
secret values; none may appear in the run's event log and metadata, its compute logs, the process output,
the pipeline's storage, MLflow's store or the sandbox's log."""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import dagster as dg
import pytest

from aep_assets.resources import build_resources
from aep_sandbox.config import CREDENTIALS_FILE
from aep_sandbox.process import SandboxProcess

from .conftest import _free_port, wait_for_http
from .test_pipeline_e2e import RUN_CONFIG

SECRETS = {
    "AEP_CLIENT_SECRET": "p8e-SWEEP-aep-client-secret-7f3a",
    "AWS_SECRET_ACCESS_KEY": "SWEEP-s3-secret-key-91c2",
    "MLFLOW_TRACKING_TOKEN": "SWEEP-mlflow-token-55d0",
}


def _files(root: Path):
    for path in root.rglob("*"):
        if path.is_file():
            yield path


@pytest.fixture
def own_moto(tmp_path):
    """A moto S3 server of this test's own, in its own process: the run's subprocesses and this test read and
    write it at once."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    assert wait_for_http(url, timeout_s=30), "moto's server did not start"
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_a_whole_run_leaks_no_secret(tmp_path, own_moto):
    moto_s3 = own_moto
    sandbox_dir = tmp_path / "aep"
    sandbox_dir.mkdir()
    creds = {"client_id": "sweep-client", "client_secret": SECRETS["AEP_CLIENT_SECRET"],
             "org_id": "SWEEP0000000000000000000@AdobeOrg", "tenant_id": "aepsandbox"}
    fd = os.open(sandbox_dir / CREDENTIALS_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="sweep",
                 aws_secret_access_key=SECRETS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket="sweep")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = tmp_path / "run.json"
    config.write_text(json.dumps(RUN_CONFIG))
    with SandboxProcess(sandbox_dir, env={"AWS_ENDPOINT_URL": moto_s3}) as sandbox:
        env = {**os.environ, **SECRETS, "DAGSTER_HOME": str(home),
               "AEP_CLIENT_ID": "sweep-client", "AEP_ORG_ID": creds["org_id"], "AEP_SANDBOX_NAME": "prod",
               "AEP_ALLOW_PRODUCTION": "1", "AEP_PLATFORM_URL": sandbox.url, "AEP_IMS_URL": sandbox.url,
               "AEP_STORAGE": "s3", "AEP_S3_BUCKET": "sweep", "AWS_ENDPOINT_URL": moto_s3,
               "AEP_EXPORTS": "storage", "AEP_ASSETS_DEMO": "1",  # the org's S3 destination; the demo asked for
               "AWS_ACCESS_KEY_ID": "sweep", "AWS_DEFAULT_REGION": "us-east-1",
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
                               "aep_assets.definitions", "-j", "cmle_demo", "-c", str(config)],
                              env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "RUN_SUCCESS" in output

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        events = [str(e) for e in instance.all_logs(run.run_id)]
        metadata = [str(m) for key in instance.get_asset_keys()
                    if (e := instance.get_latest_materialization_event(key)) is not None
                    for m in e.asset_materialization.metadata.values()]
    assert len(events) > 100 and len(metadata) > 100

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="sweep",
                      aws_secret_access_key=SECRETS["AWS_SECRET_ACCESS_KEY"])
    stored = [s3.get_object(Bucket="sweep", Key=o["Key"])["Body"].read()
              for o in s3.list_objects_v2(Bucket="sweep")["Contents"]]
    swept = {
        "process output": [output.encode()],
        "event log": [e.encode() for e in events],
        "metadata": [m.encode() for m in metadata],
        # DAGSTER_HOME holds the event log database and the compute logs (stdout/stderr of each step).
        "dagster home": [p.read_bytes() for p in _files(home)],
        "mlflow": [p.read_bytes() for p in _files(tmp_path) if "mlflow" in p.name or "mlruns" in p.parts],
        "sandbox log": [p.read_bytes() for p in _files(sandbox_dir) if p.suffix == ".log"],
        "storage": stored,
        "resource reprs": [repr(r).encode() for r in build_resources(env).values()],
    }
    assert swept["sandbox log"] and swept["mlflow"] and any(b"compute_logs" in str(p).encode() or p.suffix in (
        ".out", ".err", ".complete") for p in _files(home))
    for name, blobs in swept.items():
        for value in SECRETS.values():
            assert not any(value.encode() in b for b in blobs), f"{value} leaked into {name}"
