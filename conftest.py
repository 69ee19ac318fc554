"""How ./run test spreads the suite over its workers (pytest-xdist, ``--dist loadfile``).

A module's tests stay on one worker, so they share its fixtures (one sandbox, one materialised demo); the
benchmark scripts' quick runs, each its own subprocess in its own folder, go to whichever worker is free. The
longest units go first: a long module that starts last keeps one core busy while the other has nothing left
(longest-first is the classic rule for this kind of scheduling). Without workers the order changes nothing.
"""

from pathlib import Path

import pytest

# The longest units, longest first, from the durations ./run test prints (docs/tests.md). A module not listed
# runs after these, in the order pytest collects it; a stale order costs time, never a result.
LONGEST_FIRST = (
    "aep_assets_tests/test_real_orgs.py",
    "aep_assets_tests/test_uplift_e2e.py",
    "aep_assets_tests/test_mlflow_registry.py",
    "aep_assets_tests/test_bench.py",  # each of its tests alone, the longest about as long as the next module
    "aep_assets_tests/test_pipeline_e2e.py",
    "aep_assets_tests/test_own_data.py",
    "aep_assets_tests/test_ui_browser.py",
    "aep_assets_tests/test_model_errors.py",
    "aep_assets_tests/test_outcomes_e2e.py",
    "aep_assets_tests/test_uplift_gate_e2e.py",
    "aep_assets_tests/test_storage_s3.py",
    "aep_assets_tests/test_deployment_postgres.py",
    "aep_assets_tests/test_no_secret_anywhere.py",
    "aep_assets_tests/test_rescore_e2e.py",
    "aep_assets_tests/test_real_org_uplift.py",
    "aep_sandbox_tests/test_openapi_contract.py",
    "aep_assets_tests/test_definitions.py",
    "aep_assets_tests/test_aep_client.py",
    "aep_assets_tests/test_pipeline_faults.py",
    "aep_assets_tests/test_ctas_cleanup.py",
    "aep_assets_tests/test_batch_scoring.py",
)
# Modules whose tests share nothing, so each may run on any worker.
EACH_TEST_ALONE = {"aep_assets_tests/test_bench.py"}
ROOT = Path(__file__).parent


def _module(item: pytest.Item) -> str:
    return Path(item.path).relative_to(ROOT).as_posix()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {module: n for n, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(rank)))  # stable: a module keeps its own order


try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # without pytest-xdist the tests run in one process, in the order above
    pass
else:
    class ModuleScheduling(LoadFileScheduling):
        """A module per worker at a time, in the collection's order; a module of EACH_TEST_ALONE a test at a time."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in EACH_TEST_ALONE else module

    def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadFileScheduling | None:
        return ModuleScheduling(config, log) if config.getoption("dist") == "loadfile" else None
