"""A production-like Dagster deployment: run and event storage in PostgreSQL (dagster-postgres, Debian's
PostgreSQL started here on 127.0.0.1), the code location loaded by the webserver, and the daemon running
the sensors, the scheduler and the run queue. A run submitted through the webserver's GraphQL API is queued,
launched by the daemon, and recorded in PostgreSQL; the new-events sensor ticks."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from .conftest import _free_port, wait_for_http, wait_until
from .test_pipeline_e2e import RUN_CONFIG

ROOT = Path(__file__).resolve().parents[1]
PG_PASSWORD = "deploy-test-password"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


pytestmark = pytest.mark.skipif(_pg_bin("initdb") is None, reason="needs PostgreSQL (.ci/run installs it)")


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user the package created."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    # Not under pytest's tmp_path: that is private to this user, and PostgreSQL runs as its own.
    root = Path(tempfile.mkdtemp(prefix="aep-assets-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PG_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run(_as_postgres_user([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                                      f"--pwfile={pwfile}"]), check=True, capture_output=True)
    port = _free_port()
    subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "start",
                                      "-o", f"-p {port} -h 127.0.0.1 -k {root}"]), check=True, capture_output=True)
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    subprocess.run([_pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "dagster"], check=True, env=env, capture_output=True)
    yield port
    subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    home = root / "home"
    home.mkdir()
    # The deployment's dagster.yaml, as docs/operations.md shows it: the password comes from the environment.
    (home / "dagster.yaml").write_text(f"""
storage:
  postgres:
    postgres_db:
      username: postgres
      password: {{env: DAGSTER_PG_PASSWORD}}
      hostname: 127.0.0.1
      db_name: dagster
      port: {postgres}
      scheme: postgresql+psycopg2  # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 would pick psycopg 3
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
""")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_PASSWORD": PG_PASSWORD,
           "AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")}
    for k in ("AEP_CLIENT_ID", "AEP_STORAGE", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    logs = open(root / "services.log", "wb")
    services = [
        subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p",
                          str(port)], env=env, cwd=ROOT, stdout=logs, stderr=logs, start_new_session=True),
        subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], env=env, cwd=ROOT,
                         stdout=logs, stderr=logs, start_new_session=True),
    ]
    if not wait_for_http(f"http://127.0.0.1:{port}/server_info"):
        for proc in services:
            os.killpg(proc.pid, 15)
        pytest.fail("the webserver did not start: " + (root / "services.log").read_text()[-3000:])
    yield {"port": port, "home": home, "env": env, "log": root / "services.log"}
    for proc in services:
        os.killpg(proc.pid, 15)
    for proc in services:
        proc.wait(timeout=60)


def _graphql(deployment, query: str, variables: dict | None = None) -> dict:
    r = requests.post(f"http://127.0.0.1:{deployment['port']}/graphql", json={"query": query,
                                                                             "variables": variables or {}})
    assert r.ok and "errors" not in r.json(), r.text[:3000]
    return r.json()["data"]


def test_the_webserver_loads_the_code_location(deployment):
    data = _graphql(deployment, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                "locationOrLoadError { __typename } } } } }")
    (entry,) = data["workspaceOrError"]["locationEntries"]
    assert entry["name"] == "aep_assets" and entry["loadStatus"] == "LOADED"
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def test_the_daemon_runs_the_sensors_the_scheduler_and_the_queue(deployment):
    wanted = ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR")

    def all_healthy() -> bool:
        data = _graphql(deployment, "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }")
        healthy = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
        return all(healthy.get(d) for d in wanted)

    assert wait_until(all_healthy, timeout_s=120, what=f"the daemons {wanted} to report healthy")


def test_a_submitted_run_is_queued_launched_and_kept_in_postgres(deployment):
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment["port"])
    run_id = client.submit_job_execution("cmle_demo", run_config=RUN_CONFIG, repository_location_name="aep_assets")
    ended = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
    status = wait_until(lambda: (s := client.get_run_status(run_id)) in ended and s, timeout_s=600,
                        what=f"run {run_id} to end")
    assert status == dg.DagsterRunStatus.SUCCESS, deployment["log"].read_text()[-4000:]
    os.environ.setdefault("DAGSTER_PG_PASSWORD", PG_PASSWORD)
    with dg.DagsterInstance.from_config(str(deployment["home"])) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "cmle_demo"
        event = instance.get_latest_materialization_event(dg.AssetKey(["cmle_demo", "propensity_scores"]))
        assert event.run_id == run_id


def test_the_new_events_sensor_ticks_under_the_daemon(deployment):
    query = """{ sensorOrError(sensorSelector: {repositoryLocationName: "aep_assets",
        repositoryName: "__repository__", sensorName: "cmle_demo_new_events_sensor"}) {
        ... on Sensor { sensorState { status ticks(limit: 5) { status } } } } }"""
    def ticked():
        state = _graphql(deployment, query)["sensorOrError"]["sensorState"]
        return state if state["ticks"] else None

    state = wait_until(ticked, timeout_s=120, what="a tick of the new-events sensor")
    assert state["status"] == "RUNNING", json.dumps(state)
