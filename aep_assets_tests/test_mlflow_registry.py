"""MLflow tracking and registry on an in-process SQLite store: versions, the champion and challenger aliases
after passing and failing models, and scoring loading the champion."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import lightgbm as lgb
import numpy as np
import pytest
import sqlalchemy.exc
from mlflow import MlflowClient

from aep_assets.pipeline.naming import Names
from aep_assets.pipeline.scoring_stages import champion_card, load_champion
from aep_assets.pipeline.stage_context import StageContext
from aep_assets.resources import MLflowResource, build_resources, local_mlflow
from aep_assets.storage import LocalStorage
from aep_assets.tracking.registry import CHALLENGER, CHAMPION, TrainingLog
from aep_assets.tracking.sqlite_store import may_need_migrating, seed_from_template, template_path

from .demo import ALL_ASSETS, RESCORE_KEYS, key, ops, spec
from .test_pipeline_e2e import RUN_CONFIG

FEATURES = ("a", "b", "c")


def _booster(seed: int) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(int)
    return lgb.train({"objective": "binary", "verbose": -1, "seed": seed}, lgb.Dataset(x, y), num_boost_round=5)


def _log(tags: dict | None = None) -> TrainingLog:
    import polars as pl

    return TrainingLog(params={"num_leaves": 31}, metrics={"roc_auc": 0.8, "ece": float("nan")},
                       tables={"gains_by_decile": pl.DataFrame({"decile": [1, 2], "lift": [2.0, 1.5]})},
                       plots={}, tags=tags or {}, card={"features": list(FEATURES)})


@pytest.fixture
def registry(tmp_path):
    return local_mlflow(tmp_path).registry()


def test_a_passing_version_becomes_champion_and_a_failing_one_challenger(registry):
    first = registry.log_training("m", _booster(1), FEATURES, "v-one", _log({"dagster.run_id": "r1"}), promote=True)
    assert (first.version, first.alias) == ("1", CHAMPION)
    second = registry.log_training("m", _booster(2), FEATURES, "v-two", _log(), promote=False)
    assert (second.version, second.alias) == ("2", CHALLENGER)
    assert registry.aliases("m") == {CHAMPION: "1", CHALLENGER: "2"}
    assert registry.champion("m").model_version == "v-one"
    third = registry.log_training("m", _booster(3), FEATURES, "v-three", _log(), promote=True)
    assert registry.aliases("m") == {CHAMPION: third.version}  # the older challenger lost its alias


def test_the_champion_loads_as_the_booster_that_was_logged_even_after_the_alias_moves(registry):
    booster = _booster(4)
    registry.log_training("m", booster, FEATURES, "v", _log(), promote=True)
    champion = registry.champion("m")  # resolved once, as a scoring run resolves it
    registry.log_training("m", _booster(9), FEATURES, "w", _log(), promote=True)  # promoted in between
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert np.array_equal(registry.load_booster(champion).predict(x), booster.predict(x))
    assert registry.champion("m").model_version == "w"


def test_retraining_the_same_version_reuses_it_and_each_run_is_logged(registry):
    a = registry.log_training("m", _booster(5), FEATURES, "same", _log(), promote=True)
    b = registry.log_training("m", _booster(5), FEATURES, "same", _log(), promote=True)
    assert a.version == b.version == "1" and a.run_id != b.run_id
    client = registry.client
    run = client.get_run(a.run_id)
    assert run.data.params["num_leaves"] == "31" and run.data.metrics == {"roc_auc": 0.8}  # NaN is not logged
    artifacts = {f.path for f in client.list_artifacts(a.run_id, "evaluation")}
    assert artifacts == {"evaluation/gains_by_decile.csv", "evaluation/model_card.json"}


def test_a_champion_whose_files_are_in_another_storage_is_named_with_the_fix(registry, tmp_path):
    registry.log_training("cmle_demo", _booster(7), FEATURES, "v-elsewhere", _log(), promote=True)
    stage = StageContext(spec(), LocalStorage(tmp_path / "other-storage"), open_registry=lambda: registry)
    for load in (load_champion, champion_card):
        with pytest.raises(FileNotFoundError, match="whose files are not in this storage.*MLFLOW_TRACKING_URI"):
            load(stage)


def test_the_champions_card_loads_without_lightgbm(tmp_path):
    """scoring_features needs the champion's version and feature set, not its trees, so it does not wait for
    LightGBM's import (seconds in a run of its own, which the MLflow resource makes on another thread)."""
    resource = local_mlflow(tmp_path)
    resource.registry().log_training("cmle_demo", _booster(8), FEATURES, "v-card", _log(), promote=True)
    storage = LocalStorage(tmp_path / "storage")
    storage.write_bytes(f"{Names('cmle_demo').models}/v-card/model_card.json", b'{"feature_set": {"events": []}}')
    script = (
        "import sys; sys.modules['lightgbm'] = None  # any import of LightGBM fails\n"
        "from pathlib import Path\n"
        "from aep_assets.pipeline.scoring_stages import champion_card\n"
        "from aep_assets.pipeline.stage_context import StageContext\n"
        "from aep_assets.resources import local_mlflow\n"
        "from aep_assets.storage import LocalStorage\n"
        "from aep_assets_tests.demo import spec\n"
        f"root = Path({str(tmp_path)!r})\n"
        "stage = StageContext(spec(), LocalStorage(root / 'storage'), open_registry=local_mlflow(root).registry)\n"
        "print(champion_card(stage))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('v-card', {'feature_set': {'events': []}})"


def test_no_champion_yet(registry):
    registry.log_training("m", _booster(6), FEATURES, "v", _log(), promote=False)
    assert registry.champion("m") is None and registry.aliases("m") == {CHALLENGER: "1"}


def _meta(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(key(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_pipeline_registers_its_model_and_scores_with_the_champion(tmp_path):
    resources = build_resources({"AEP_SANDBOX_DIR": str(tmp_path / "aep"), "AEP_STORAGE_DIR": str(tmp_path / "s")})
    with dg.instance_for_test() as instance:
        result = dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG)
        assert result.success
        model = _meta(instance, "propensity_model")
        assert model["mlflow_alias"] == CHAMPION and model["mlflow_model_version"] == "1"
        assert _meta(instance, "propensity_scores")["mlflow_model_version"] == "1"
        client = MlflowClient(resources["mlflow"].tracking_uri)
        run = client.get_run(model["mlflow_run"].split("/runs/")[1])
        assert run.data.tags["dagster.run_id"] == result.run_id
        assert run.data.tags["dagster.run_url"].endswith(f"/runs/{result.run_id}")
        assert run.data.tags["aep.training_dataset_id"] and run.data.tags["aep.source_batch_ids"]
        assert run.data.metrics["roc_auc"] == pytest.approx(model["roc_auc"])
        evaluation = {f.path.split("/")[-1] for f in client.list_artifacts(run.info.run_id, "evaluation")}
        assert {"roc.png", "gains.png", "reliability.png", "gains_by_decile.csv"} <= evaluation
        version = client.get_model_version("cmle_demo", "1")
        assert version.tags["aep_assets.model_version"] == model["model_version"]

        # A retrained model that fails a blocking gate stays challenger; scoring keeps the champion.
        dg.materialize(ALL_ASSETS, selection=[key("propensity_model")], resources=resources, instance=instance,
                       run_config=ops({"propensity_model": {"config": {"seed": 8, "auc_floor": 0.99}}}),
                       raise_on_error=False)
        assert _meta(instance, "propensity_model")["mlflow_alias"] == CHALLENGER
        assert resources["mlflow"].registry().aliases("cmle_demo") == {CHAMPION: "1", CHALLENGER: "2"}
        assert resources["mlflow"].registry().champion("cmle_demo").model_version == model["model_version"]
        full = ops({"scoring_features": {"config": {"cutoff": "2026-06-01", "mode": "full"}}})
        assert dg.materialize(ALL_ASSETS, selection=RESCORE_KEYS, resources=resources, instance=instance,
                              run_config=full).success
        scores = _meta(instance, "propensity_scores")
        assert scores["mlflow_model_version"] == "1" and scores["model_version"] == model["model_version"]

        # A champion promoted between scoring_features and propensity_scores: the scores refuse features built for
        # the model before it, and name the step to run again.
        assert dg.materialize(ALL_ASSETS, selection=[key("scoring_features")], resources=resources,
                              instance=instance, run_config=full).success
        gates_open = {"seed": 9, "auc_floor": 0.5, "max_ece": 1.0, "champion_tolerance": 1.0}
        assert dg.materialize(ALL_ASSETS, selection=[key("propensity_model")], resources=resources, instance=instance,
                              run_config=ops({"propensity_model": {"config": gates_open}})).success
        assert _meta(instance, "propensity_model")["mlflow_alias"] == CHAMPION
        stale = dg.materialize(ALL_ASSETS, selection=[key("propensity_scores")], resources=resources,
                               instance=instance, raise_on_error=False)
        assert not stale.success
        assert "scoring_features were built for model version" in _failure_text(stale)
        assert "materialise scoring_features again" in _failure_text(stale)


def _failure_text(result) -> str:
    """Every step failure's error, with its causes."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def test_the_store_a_run_creates_beside_its_steps_is_the_one_they_use(tmp_path):
    """The resource starts creating the store when the run starts; the registry a step gets afterwards works on
    that store."""
    resource = local_mlflow(tmp_path)
    with dg.build_resources({"mlflow": resource}) as resources:
        registry = resources.mlflow.registry()
        assert (tmp_path / "mlflow" / "mlflow.db").is_file()
        registry.log_training("m", _booster(5), FEATURES, "v", _log(), promote=True)
        assert registry.champion("m").model_version == "v"


@pytest.fixture(scope="module")
def child_migrated(tmp_path_factory) -> Path:
    """What a run starts beside its steps, run once for the module (a migration is seconds of a core): given only
    the URI in its environment, the child creates and migrates a new SQLite store. Tests copy the file."""
    path = tmp_path_factory.mktemp("child") / "mlflow.db"
    subprocess.run([sys.executable, "-m", "aep_assets.tracking.open_store"], check=True,
                   env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{path}"})
    return path


def test_the_child_process_creates_and_migrates_a_database_store(child_migrated, tmp_path):
    """The child leaves a store that MLflow opens as it is."""
    shutil.copy(child_migrated, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models() == []


def test_a_run_starts_the_child_only_for_a_store_that_may_need_migrating(child_migrated, tmp_path):
    # Every run would otherwise pay a second interpreter importing MLflow (seconds of a core) for nothing.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert may_need_migrating(uri)  # no file yet
    (tmp_path / "mlflow.db").touch()
    assert may_need_migrating(uri)  # a file without MLflow's tables
    shutil.copy(child_migrated, tmp_path / "mlflow.db")  # the file as the child left it
    assert not may_need_migrating(uri)
    assert may_need_migrating("postgresql://mlflow@127.0.0.1/mlflow")  # a server's schema is the server's to say
    assert not may_need_migrating("http://127.0.0.1:5000") and not may_need_migrating("databricks")


def test_a_new_store_after_the_first_is_a_copy_of_an_empty_one_and_works_as_a_migrated_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AEP_ASSETS_CACHE_DIR", str(tmp_path / "cache"))
    first = local_mlflow(tmp_path / "first")
    with dg.build_resources({"mlflow": first}) as resources:  # migrated by the child, then kept as the template
        resources.mlflow.registry()
    assert list((tmp_path / "cache").iterdir()) == [template_path()]
    second = local_mlflow(tmp_path / "second")
    assert seed_from_template(second.tracking_uri, second.artifact_root)
    assert not seed_from_template(second.tracking_uri, second.artifact_root)  # never over an existing store
    with dg.build_resources({"mlflow": second}) as resources:
        registry = resources.mlflow.registry()
        registry.log_training("m", _booster(5), FEATURES, "v", _log(), promote=True)
        assert registry.champion("m").model_version == "v"
    client = MlflowClient(tracking_uri=second.tracking_uri, registry_uri=second.tracking_uri)
    default = client.get_experiment("0")  # the copy's default experiment keeps its artifacts in this store's root
    assert default.artifact_location == (tmp_path / "second" / "mlflow" / "artifacts" / "0").resolve().as_uri()
    assert [e.name for e in client.search_experiments()] == ["aep_assets/m", "Default"]
    first_client = MlflowClient(tracking_uri=first.tracking_uri, registry_uri=first.tracking_uri)
    assert first_client.search_registered_models() == []  # the template's source is untouched


def test_a_file_that_is_not_a_store_fails_the_step_that_needs_it_not_the_run(tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    resource = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert may_need_migrating(resource.tracking_uri)  # SQLite cannot read it: MLflow is left to say why
    with dg.build_resources({"mlflow": resource}) as resources:  # setting up does not fail the run
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="file is not a database"):
            resources.mlflow.registry()


def test_a_store_that_cannot_open_fails_the_step_that_needs_it(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    resource = MLflowResource(tracking_uri=f"sqlite:///{blocked}/mlflow.db")
    with dg.build_resources({"mlflow": resource}) as resources:  # setting up does not fail the run
        with pytest.raises(OSError, match=re.escape(str(blocked))):
            resources.mlflow.registry()
