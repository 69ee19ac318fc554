"""Shared fixtures: a real sandbox over HTTP, a client for it (the project's AEP client, one client among the
third-party ones the tests drive), extra sandboxes, and a moto S3 server."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from aep_assets.aep import AEPClient, AEPConfig
from aep_assets.pipeline.ingest import replace_dataset_rows
from aep_assets.pipeline.ownership import mark_dataset
from aep_sandbox.process import SandboxProcess

TEST_OWNER = "tests"


def client_for(sandbox: SandboxProcess, **overrides) -> AEPClient:
    creds = sandbox.credentials
    config = {"platform_url": sandbox.url, "ims_url": sandbox.url, "client_id": creds.client_id,
              "client_secret": creds.client_secret, "org_id": creds.org_id, "sandbox_name": "prod",
              "timeout_s": 30.0, **overrides}
    return AEPClient(AEPConfig(**config))


def replace_rows(client: AEPClient, dataset_id: str, tables) -> dict:
    """Fill a test's own dataset: mark it as the tests' (the ownership tag), then replay its batches."""
    ds = mark_dataset(client, client.catalog.get_dataset(dataset_id), TEST_OWNER)
    return replace_dataset_rows(client, ds, tables, owner=TEST_OWNER)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[SandboxProcess]:
    # The shared sandbox keeps its Data Landing Zone in a directory whether or not Azurite is installed; tests
    # of the other kinds start their own.
    with SandboxProcess(tmp_path_factory.mktemp("sandbox"), dlz="local") as sb:
        yield sb


@pytest.fixture
def client(sandbox) -> AEPClient:
    return client_for(sandbox)


@pytest.fixture
def make_sandbox(tmp_path: Path):
    """Start extra sandboxes (e.g. with injected faults); all stop when the test ends."""
    started: list[SandboxProcess] = []

    def start(name: str = "faulty", **kwargs) -> SandboxProcess:
        sb = SandboxProcess(tmp_path / name, **{"dlz": "local", **kwargs}).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


def wait_until(check, *, timeout_s: float, what: str):
    """Poll ``check`` until it returns something true, and return that; for the lifecycles of other processes (a
    server starting, a daemon's tick, a run) that tell no one when they move. The polls start at once and back off
    to 2 s; past ``timeout_s`` the test fails, naming ``what`` it waited for."""
    import time

    deadline, interval = time.monotonic() + timeout_s, 0.05
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, 2.0)


def wait_for_http(url: str, timeout_s: float = 180) -> bool:
    """Whether a server started by a test answers ``url`` within ``timeout_s``."""
    import requests

    def answers() -> bool:
        try:
            return requests.get(url, timeout=2).ok
        except requests.RequestException:
            return False

    try:
        return wait_until(answers, timeout_s=timeout_s, what=url)
    except AssertionError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real S3 API (moto's server) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_s3, monkeypatch) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": moto_s3, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env
