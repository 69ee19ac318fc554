"""The whole graph survives AEP's failures, and afterwards every dataset holds exactly its rows.

The sandbox injects 429 and 503 responses into about 10 % of all requests (IMS included), fails one
batch while processing it, and drops one connection; the run must still succeed, with no row lost
and none duplicated.
"""

import json
import logging

import dagster as dg
import polars as pl
import pytest

from aep_assets.resources import build_resources
from aep_assets.storage import LocalStorage
from aep_sandbox.process import SandboxProcess

from .conftest import client_for
from .demo import ALL_ASSETS, EVENT_DATASET, NAMES, PROFILE_DATASET, SCORE_DATASET
from .test_pipeline_e2e import N_PROFILES, RUN_CONFIG

FAULTS = [
    {"status": 429, "rate": 0.05, "retry_after": 0.05},
    {"status": 503, "rate": 0.053},  # with the 429s: 10 % of requests
    {"target": "batch", "times": 1},
    {"drop": True, "times": 1, "path": "^/data/foundation/catalog/batches"},
]


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage"),
                                 "AEP_SANDBOX_FAULTS": json.dumps(FAULTS)})
    retries = RetryCounter()
    logging.getLogger("aep_assets.aep").addHandler(retries)
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG)
    finally:
        logging.getLogger("aep_assets.aep").removeHandler(retries)
    with SandboxProcess(root / "aep") as sb:
        client = client_for(sb)
        batches = {name: list(client.catalog.iter_batches(client.catalog.find_dataset(name)["id"]))
                   for name in (PROFILE_DATASET, EVENT_DATASET, SCORE_DATASET)}
    return root, result, batches, retries.by_cause


class RetryCounter(logging.Handler):
    """Counts the client's retries by cause, from its 'retry N in ...' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_cause: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if ", retry " in message:
            cause = message.split(": ", 1)[1].split(",", 1)[0]
            self.by_cause[cause] = self.by_cause.get(cause, 0) + 1


def _rows(batches: list[dict]) -> int:
    return sum(int(b["metrics"].get("outputRecordCount", 0)) for b in batches if b["status"] == "success")


def test_the_graph_completes_under_injected_failures(faulty_run):
    _, result, batches, retries = faulty_run
    assert result.success
    assert retries.get("429", 0) >= 3 and retries.get("503", 0) >= 3, retries  # about 15 of each are expected
    assert retries.get("connection failed") == 1, retries
    failed = [b for bs in batches.values() for b in bs if b["status"] == "failed"]
    assert [b["errors"][0]["code"] for b in failed] == ["INTERNAL"]  # the injected one, ingested again


def test_every_dataset_holds_exactly_its_rows(faulty_run):
    root, _, batches, _ = faulty_run
    storage = LocalStorage(root / "storage")
    truth = pl.read_parquet(root / "storage" / NAMES.simulation_truth)
    scores = storage.read_parquet([json.loads(storage.read_bytes(NAMES.scores_pointer))["key"]])
    assert _rows(batches[PROFILE_DATASET]) == N_PROFILES
    assert _rows(batches[EVENT_DATASET]) == int(truth["n_events"].sum())
    assert _rows(batches[SCORE_DATASET]) == scores.height == scores["profile_id"].n_unique()
    assert all(len([b for b in bs if b["status"] == "success"]) == 1 for bs in batches.values())
