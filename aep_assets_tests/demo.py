"""The CMLE demo instance as the tests address it: its assets, keys, op names, datasets and jobs."""

import dagster as dg

from aep_assets.definitions import defs, materializable_assets, op_config
from aep_assets.jobs import RESCORE_ASSETS
from aep_assets.pipeline.naming import Names

DEMO = "cmle_demo"
NAMES = Names(DEMO)
ALL_ASSETS = materializable_assets()
RESCORE_KEYS = [dg.AssetKey([DEMO, a]) for a in RESCORE_ASSETS]
EVENT_DATASET, PROFILE_DATASET, SCORE_DATASET = NAMES.event_dataset, NAMES.profile_dataset, NAMES.score_dataset
SCORES_POINTER = NAMES.scores_pointer


def key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([DEMO, asset])


def ops(config: dict) -> dict:
    return op_config(DEMO, config)


def simulate_new_events() -> dg.JobDefinition:
    return defs.resolve_job_def(f"{DEMO}_simulate_new_events")


def new_events_sensor() -> dg.SensorDefinition:
    return defs.resolve_sensor_def(f"{DEMO}_new_events_sensor")


def outcome_window_sensor() -> dg.SensorDefinition:
    return defs.resolve_sensor_def(f"{DEMO}_outcome_window_sensor")


def feature_set():
    """The demo's 45 features, resolved from its defs.yaml (no query needed: it lists them all)."""
    from pathlib import Path

    import yaml

    from aep_assets.pipeline.feature_builds import resolve_feature_set
    from aep_assets.pipeline.sources import SourceDataset, Sources
    from aep_assets.pipeline.spec import ModelSpec

    doc = yaml.safe_load((Path(__file__).parents[1] / "aep_assets/defs/cmle_demo/defs.yaml").read_text())
    spec = ModelSpec.model_validate(doc["attributes"])
    table = SourceDataset("t", "t", "t", "")
    train, _ = spec.cutoff_times()
    return resolve_feature_set(None, spec, Sources((table,), table), train)


def flagged(events, fs):
    """Raw events (profile_id, eventType, timestamp) with the match flags the engine gives each row, for
    conditions of the form eventType = '...' (all the demo has)."""
    import re

    import polars as pl

    def event_type(condition: str) -> str:
        return re.fullmatch(r"eventType = '([^']+)'", condition).group(1)

    return events.with_columns(
        (pl.col("eventType") == event_type(fs.goal)).cast(pl.Int32).alias("goal_event"),
        *[(pl.col("eventType") == event_type(e.condition)).cast(pl.Int32).alias(f"e{i}")
          for i, e in enumerate(fs.events)])


def spec():
    from pathlib import Path

    import yaml

    from aep_assets.pipeline.spec import ModelSpec

    doc = yaml.safe_load((Path(__file__).parents[1] / "aep_assets/defs/cmle_demo/defs.yaml").read_text())
    return ModelSpec.model_validate(doc["attributes"])
