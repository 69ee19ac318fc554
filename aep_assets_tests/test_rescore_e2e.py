"""New events land in AEP, the sensor sees them, and the rescore touches exactly the profiles that changed.

A real Dagster instance and the real sandbox over HTTP throughout: the whole graph at 2,000 profiles,
then ``simulate_new_events``, ``new_events_sensor`` ticks (``build_sensor_context``) and ``rescore`` runs.
"""

import json
import time

import dagster as dg
import polars as pl
import pytest

from aep_assets.assets.scoring import ScoringFeaturesConfig
from aep_assets.ml.feature_set import ELIGIBLE, ID
from aep_assets.ml.score_summary import ScoredRows, ScoreSummary, summary_of
from aep_assets.pipeline.rescoring import FULL, INCREMENTAL
from aep_assets.pipeline.scoring_stages import build_scoring_features, load_champion
from aep_assets.pipeline.stage_context import StageContext
from aep_assets.pipeline.synthetic import load_simulation
from aep_assets.resources import AdobeAEP, build_resources
from aep_assets.storage import LocalStorage
from aep_sandbox.datalake import DataLake
from aep_sandbox.process import SandboxProcess

from .conftest import _free_port, client_for
from .demo import (
    ALL_ASSETS,
    DEMO,
    EVENT_DATASET,
    NAMES,
    RESCORE_KEYS,
    SCORE_DATASET,
    new_events_sensor,
    ops,
    simulate_new_events,
    spec,
)
from .test_pipeline_e2e import RUN_CONFIG

SCORING_CUTOFF = "2026-06-02"  # one day after the simulation's as_of, when the new events have landed
NEW_EVENTS = ops({"continue_events": {"config": {"days": 1, "profile_share": 0.3, "seed": 11}}})


def _rescore(resources, instance, mode: str = "auto") -> dg.ExecuteInProcessResult:
    return dg.materialize(ALL_ASSETS, selection=RESCORE_KEYS, resources=resources, instance=instance,
                          run_config=ops({"scoring_features": {"config": {"cutoff": SCORING_CUTOFF, "mode": mode}}}))


def _land_new_events(world, seed: int) -> None:
    """A quarter of a day of new events for about 5 % of the profiles, as one new batch."""
    config = ops({"continue_events": {"config": {"days": 0.25, "profile_share": 0.05, "seed": seed}}})
    assert simulate_new_events().execute_in_process(instance=world["instance"], resources=world["resources"],
                                                  run_config=config).success


def _sensor_resources(sandbox: SandboxProcess, storage_dir) -> dict:
    creds = sandbox.credentials
    return {"aep": AdobeAEP(client_id=creds.client_id, client_secret=creds.client_secret, org_id=creds.org_id,
                            platform_url=sandbox.url, ims_url=sandbox.url, allow_production=True),
            "storage": build_resources({"AEP_STORAGE_DIR": str(storage_dir)})["storage"]}


def _tick(instance, resources, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = new_events_sensor()(context)
    return result, (result.cursor if isinstance(result, dg.SensorResult) else None) or context.cursor


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    mats = [m for m in result.asset_materializations_for_node(f"{DEMO}__{key}")]
    return {k: v.value for k, v in mats[-1].metadata.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rescore")
    resources = build_resources({"AEP_SANDBOX_DIR": str(root / "aep"), "AEP_STORAGE_DIR": str(root / "storage")})
    with dg.instance_for_test() as instance, SandboxProcess(root / "aep") as sandbox:
        assert dg.materialize(ALL_ASSETS, resources=resources, instance=instance, run_config=RUN_CONFIG).success
        yield {"root": root, "resources": resources, "instance": instance, "sandbox": sandbox,
               "storage": LocalStorage(root / "storage"), "sensor": _sensor_resources(sandbox, root / "storage")}


@pytest.fixture(scope="module")
def rescored(world):
    """Sensor ticks around one batch of new events, then the rescore it asks for; the state right after it is
    kept here, so the tests that read it do not depend on what other tests land or run later."""
    instance, storage = world["instance"], world["storage"]
    published_before = json.loads(storage.read_bytes(NAMES.scores_pointer))
    previous = storage.read_parquet([published_before["key"]])
    first, cursor = _tick(instance, world["sensor"], None)
    landed = simulate_new_events().execute_in_process(instance=instance, resources=world["resources"],
                                                    run_config=NEW_EVENTS)
    assert landed.success
    request, cursor_after = _tick(instance, world["sensor"], cursor)
    quiet, _ = _tick(instance, world["sensor"], cursor_after)
    result = _rescore(world["resources"], instance)
    assert result.success
    client = client_for(world["sandbox"])
    return {"first": first, "request": request, "quiet": quiet, "result": result, "previous": previous,
            "published_before": published_before,
            "landed": landed, "published": json.loads(storage.read_bytes(NAMES.scores_pointer)),
            "covered": storage.read_parquet(json.loads(storage.read_bytes(NAMES.scoring_export))["keys"]),
            "changed": _changed_users(storage, "2026-06-01"),
            "score_batches": client.ingestion.active_batch_ids(client.catalog.find_dataset(SCORE_DATASET)["id"])}


def _changed_users(storage: LocalStorage, since: str) -> set[str]:
    sim = load_simulation(storage, NAMES.simulation)
    new = sim.events.filter(pl.col("timestamp") >= pl.lit(since).str.to_datetime(time_zone="UTC"))
    return set(sim.profiles.filter(pl.col("profile_index").is_in(new["profile_index"].implode()))["userid"])


def test_first_tick_finds_the_pipeline_batches_already_scored(rescored):
    first = rescored["first"]
    assert isinstance(first, dg.SensorResult) and not first.run_requests
    assert "already reflected in the published scores" in first.skip_reason.skip_message


def test_a_new_batch_requests_one_rescore_with_a_run_key(rescored, world):
    request = rescored["request"]
    assert len(request.run_requests) == 1
    run = request.run_requests[0]
    client = client_for(world["sandbox"])
    newest = max(client.catalog.iter_batches(client.catalog.find_dataset(EVENT_DATASET)["id"], status="success"),
                 key=lambda b: b["created"])
    assert run.tags["aep_assets/event_batches"] == newest["id"] and run.run_key.startswith("events-")


def test_no_new_batch_skips_with_a_reason(rescored):
    assert isinstance(rescored["quiet"], dg.SkipReason)
    assert "No new successful batches" in rescored["quiet"].skip_message


def test_only_the_changed_profiles_are_rescored_and_written_back(rescored, world):
    result = rescored["result"]
    features_meta = _metadata(result, "scoring_features")
    assert features_meta["mode"] == "incremental" and len(features_meta["new_batches"]) == 1
    changed, covered = rescored["changed"], rescored["covered"]
    assert set(covered[ID]) == changed  # every changed profile, and no other
    previous = rescored["previous"]
    expected = changed & (set(previous[ID]) | set(covered.filter(pl.col(ELIGIBLE) == 1)[ID]))
    written = _metadata(result, "aep_score_dataset")
    client = client_for(world["sandbox"])
    batch = client.catalog.get_batch(written["batch_id"])
    ds = client.catalog.find_dataset(SCORE_DATASET)
    lake = DataLake(world["root"] / "aep" / "files")
    rows = pl.concat([pl.read_parquet(f) for f in lake.batch_files(client.config.org_id, "prod", ds["id"],
                                                                   batch["id"])])
    tenant = client.schemas.tenant_id()
    assert batch["status"] == "success" and written["mode"] == "incremental"
    assert set(rows[f"_{tenant}"].struct.field("userid")) == expected  # exactly the changed profiles
    assert len(rescored["score_batches"]) == 2 and batch["id"] in rescored["score_batches"]  # the full batch, then this


def test_unchanged_profiles_keep_their_scores(rescored, world):
    previous, published = rescored["previous"], rescored["published"]
    merged = world["storage"].read_parquet([published["key"]])
    changes = world["storage"].read_parquet([published["changes_key"]])
    same = previous.filter(~pl.col(ID).is_in(changes[ID].implode()))
    kept = merged.join(same.select(ID, pl.col("propensity").alias("before")), on=ID)
    assert kept.height == same.height == merged.height - changes.filter(pl.col("band") != "converted").height
    assert (kept["propensity"] == kept["before"]).all()


def test_incremental_features_equal_a_full_recomputation(rescored, world):
    storage = world["storage"]
    incremental = rescored["covered"]
    full_run = dg.materialize(ALL_ASSETS, selection=[dg.AssetKey([DEMO, "scoring_features"])],
                              resources=world["resources"], instance=world["instance"],
                              run_config=ops({"scoring_features": {"config": {"cutoff": SCORING_CUTOFF,
                                                                                  "mode": "full"}}}))
    assert full_run.success
    full = storage.read_parquet(json.loads(storage.read_bytes(NAMES.scoring_export))["keys"])
    sim = load_simulation(storage, NAMES.simulation)
    with_events = sim.events.filter(pl.col("timestamp") < pl.lit(SCORING_CUTOFF).str.to_datetime(time_zone="UTC"))
    assert full.height == with_events["profile_index"].n_unique() and incremental.height < full.height
    same = full.filter(pl.col(ID).is_in(incremental[ID].implode()))
    cols = [c for c in full.columns if c != "split"]
    assert same.select(cols).sort(ID).equals(incremental.select(cols).sort(ID))


def _assert_summary_is_counted_over_the_files(world, published: dict) -> None:
    """The summary kept beside published scores equals one counted again over their every score and feature."""
    storage = world["storage"]
    kept = ScoreSummary.from_json(json.loads(storage.read_bytes(published["summary_key"])))
    stage = StageContext(spec(), storage, client_for(world["sandbox"]),
                         open_registry=world["resources"]["mlflow"].registry)
    reference = load_champion(stage).drift_reference.at(published["cutoff"])
    counted = summary_of(ScoredRows(storage.read_parquet([published["key"]]),
                                    storage.read_parquet([published["features_key"]])), reference)
    assert (kept.rows, kept.band_rows, kept.histogram, kept.top) == (
        counted.rows, counted.band_rows, counted.histogram, counted.top)
    assert kept.drift_counts == counted.drift_counts and any(name.endswith("@aged") for name in kept.drift_counts)
    assert kept.band_propensity_sum == pytest.approx(counted.band_propensity_sum)


def test_the_rescores_summary_is_the_one_counted_over_its_merged_scores(rescored, world):
    """The incremental rescore updated the published scores' summary from the changed rows alone, at a later cutoff
    than theirs; counted again over every merged score and feature, it is the same."""
    published, before = rescored["published"], rescored["published_before"]
    assert published["mode"] == INCREMENTAL and published["summary_key"] and before["summary_key"]
    assert before["cutoff"] < published["cutoff"]
    _assert_summary_is_counted_over_the_files(world, published)


def test_scores_published_without_a_summary_are_counted_in_full_once(rescored, world):
    """Scores published by an earlier version of the project have no summary: the next incremental rescore counts
    every score, and keeps a summary for the rescore after it."""
    storage = world["storage"]
    pointer = json.loads(storage.read_bytes(NAMES.scores_pointer))
    storage.write_bytes(NAMES.scores_pointer,
                        json.dumps({k: v for k, v in pointer.items() if k != "summary_key"}).encode())
    _land_new_events(world, seed=33)
    result = _rescore(world["resources"], world["instance"])
    assert result.success and _metadata(result, "propensity_scores")["mode"] == INCREMENTAL
    published = json.loads(storage.read_bytes(NAMES.scores_pointer))
    assert published["summary_key"] and published["summary_key"] != pointer["summary_key"]
    _assert_summary_is_counted_over_the_files(world, published)


def test_audience_sizes_follow_the_new_scores(rescored, world):
    published = rescored["published"]
    merged = world["storage"].read_parquet([published["key"]])
    bands = dict(merged.group_by("band").len().iter_rows())
    treated = dict(merged.filter(pl.col("group") == "treatment").group_by("band").len().iter_rows())
    audiences = _metadata(rescored["result"], "propensity_audiences")
    assert {b: audiences[f"{b}_size"] for b in ("high", "medium", "low")} == treated
    assert {b: audiences[f"{b}_size"] + audiences[f"{b}_control_size"] for b in bands} == bands
    assert sum(bands.values()) == merged.height


def test_a_rescore_keeps_every_profile_in_its_holdout_group(rescored, world):
    """A profile that stays in its audience stays in its group, rescored or not."""
    before = rescored["previous"].select(ID, "band", "group")
    after = world["storage"].read_parquet([rescored["published"]["key"]]).select(ID, "band", "group")
    both = before.join(after, on=[ID, "band"], suffix="_after")
    assert both.height > 0.9 * before.height and (both["group"] == both["group_after"]).all()
    assert before["group"].drop_nulls().n_unique() == 2


def test_a_rescore_with_nothing_new_writes_nothing(rescored, world):
    """The second of two rescores in a row finds nothing new (the first takes whatever has landed by now)."""
    client, storage = client_for(world["sandbox"]), world["storage"]
    assert _rescore(world["resources"], world["instance"]).success
    ds = client.catalog.find_dataset(SCORE_DATASET)
    batches = client.ingestion.active_batch_ids(ds["id"])
    before = json.loads(storage.read_bytes(NAMES.scores_pointer))
    result = _rescore(world["resources"], world["instance"])
    assert result.success
    assert "nothing to rescore" in _metadata(result, "scoring_features")["reason"]
    assert _metadata(result, "aep_score_dataset")["profiles_written"] == 0
    assert client.ingestion.active_batch_ids(ds["id"]) == batches
    published = json.loads(storage.read_bytes(NAMES.scores_pointer))
    assert storage.read_parquet([published["key"]]).equals(storage.read_parquet([before["key"]]))


def test_a_burst_of_batches_becomes_one_run(rescored, world):
    instance = world["instance"]
    _, cursor = _tick(instance, world["sensor"], None)
    for seed in (21, 22):
        _land_new_events(world, seed)
    burst, _ = _tick(instance, world["sensor"], cursor)
    assert len(burst.run_requests) == 1
    assert len(burst.run_requests[0].tags["aep_assets/event_batches"].split(",")) == 2


def test_an_unreachable_platform_skips_and_keeps_the_cursor(world):
    dead = f"http://127.0.0.1:{_free_port()}"
    resources = {**world["sensor"], "aep": AdobeAEP(client_id="x", client_secret="y", org_id="o@AdobeOrg",
                                                     platform_url=dead, ims_url=dead)}
    cursor = json.dumps({"created": 123, "seen": {}})
    result, after = _tick(world["instance"], resources, cursor)
    assert isinstance(result, dg.SkipReason) and "unreachable" in result.skip_message
    assert after == cursor


def test_expired_scores_request_a_rescore_without_new_batches(rescored, world):
    storage, instance = world["storage"], world["instance"]
    _, cursor = _tick(instance, world["sensor"], None)
    while True:  # drain what earlier tests landed
        result, cursor = _tick(instance, world["sensor"], cursor)
        if isinstance(result, dg.SkipReason) or not result.run_requests:
            break
    pointer = storage.read_bytes(NAMES.scores_pointer)
    published = json.loads(pointer)
    try:
        storage.write_bytes(NAMES.scores_pointer, json.dumps({**published, "expires_at": "2026-06-01T00:00:00+00:00",
                                                                "scored_at": "2026-05-25T00:00:00+00:00"}).encode())
        result, _ = _tick(instance, world["sensor"], cursor)
        assert isinstance(result, dg.RunRequest) and result.run_key == "expired-2026-05-25T00:00:00+00:00"
    finally:
        storage.write_bytes(NAMES.scores_pointer, pointer)


def test_drift_above_the_block_threshold_stops_the_write_back(rescored, world):
    storage = world["storage"]
    before = storage.read_bytes(NAMES.scores_pointer)
    result = dg.materialize(
        ALL_ASSETS, selection=RESCORE_KEYS, resources=world["resources"], instance=world["instance"],
        raise_on_error=False,
        run_config=ops({"scoring_features": {"config": {"cutoff": SCORING_CUTOFF, "mode": "full"}},
                            "propensity_scores": {"config": {"drift_warn": 0.0001, "drift_block": 0.0002}}}))
    drift = next(c for c in result.get_asset_check_evaluations() if c.check_name == "drift")
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
    assert result.asset_materializations_for_node(f"{DEMO}__propensity_scores")  # scored, with the PSI
    assert not result.asset_materializations_for_node(f"{DEMO}__aep_score_dataset")  # blocked: nothing written
    assert storage.read_bytes(NAMES.scores_pointer) == before  # the published scores are unchanged


@pytest.fixture
def run_client(world):
    """A client of the sandbox as a run starts it (its landing zone in storage, where exports land)."""
    with dg.build_resources({"aep": world["resources"]["aep"]}) as resources:
        yield resources.aep.client()


def _stage_opening_the_registry(world, client, open_registry) -> StageContext:
    """The rescore's scoring_features stage as a run of its own sees it: the registry still opening."""
    return StageContext(ScoringFeaturesConfig(cutoff=SCORING_CUTOFF).apply(spec()), world["storage"], client,
                        open_registry=open_registry, registry_ready=lambda: False)


def _feature_queries(client, seen: set[str]) -> list[dict]:
    """The feature CTAS queries submitted since ``seen``, newest first (not the DROPs of older tables)."""
    return [q for q in client.query.list(limit=100)
            if q["id"] not in seen and q["name"].startswith(f"aep_assets {DEMO} scoring_features ")]


def test_the_feature_query_starts_while_the_registry_opens(rescored, world, run_client):
    """In a run of its own (a sensor's) MLflow's store takes seconds to open. The published scores' model is still
    the champion, so its feature query is under way before the registry answers, and it is the rescore's query."""
    client, registry = run_client, world["resources"]["mlflow"].registry()
    _land_new_events(world, seed=31)
    seen = {q["id"] for q in client.query.list(limit=100)}

    def open_registry():  # answers only once a feature query has been submitted without it
        deadline = time.monotonic() + 30
        while not _feature_queries(client, seen):
            assert time.monotonic() < deadline, "no feature query started while the registry was opening"
            time.sleep(0.02)
        return registry

    features = build_scoring_features(_stage_opening_the_registry(world, client, open_registry))
    assert features.plan.mode == INCREMENTAL and features.build.query is not None
    assert [q["id"] for q in _feature_queries(client, seen)] == [features.build.query["id"]]


def test_a_new_champion_discards_the_early_feature_query(rescored, world, run_client):
    """When the champion is no longer the model that published the scores, the query started for that model is
    dropped, and the champion's features are built for every profile."""
    client, storage, registry = run_client, world["storage"], world["resources"]["mlflow"].registry()
    pointer = storage.read_bytes(NAMES.scores_pointer)
    champion = json.loads(pointer)["model_version"]
    card = f"{NAMES.models}/{champion}/model_card.json"
    _land_new_events(world, seed=32)
    seen = {q["id"] for q in client.query.list(limit=100)}
    try:  # scores published by an older model, with the same features
        storage.write_bytes(f"{NAMES.models}/v-older/model_card.json", storage.read_bytes(card))
        storage.write_bytes(NAMES.scores_pointer,
                            json.dumps({**json.loads(pointer), "model_version": "v-older"}).encode())
        features = build_scoring_features(_stage_opening_the_registry(world, client, lambda: registry))
    finally:
        storage.write_bytes(NAMES.scores_pointer, pointer)
        (world["root"] / "storage" / NAMES.models / "v-older" / "model_card.json").unlink()
    assert features.plan.mode == FULL and "v-older" in features.plan.reason
    queries = [q["id"] for q in _feature_queries(client, seen)][::-1]  # oldest first
    assert len(queries) == 2 and queries[-1] == features.build.query["id"]  # the early query, then the champion's
    tables = [ds["name"] for ds in client.catalog.iter_datasets() if "scoring_features" in ds["name"]]
    assert tables == [features.build.table]
