"""The CMLE demo instance as the tests address it: its assets, keys, op names, datasets and jobs."""

import dagster as dg

from aep_assets.definitions import defs
from aep_assets.jobs import RESCORE_ASSETS
from aep_assets.pipeline.naming import Names

DEMO = "cmle_demo"
NAMES = Names(DEMO)
ALL_ASSETS = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
RESCORE_KEYS = [dg.AssetKey([DEMO, a]) for a in RESCORE_ASSETS]
EVENT_DATASET, PROFILE_DATASET, SCORE_DATASET = NAMES.event_dataset, NAMES.profile_dataset, NAMES.score_dataset
SCORES_POINTER = NAMES.scores_pointer


def key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([DEMO, asset])


def ops(config: dict) -> dict:
    """Run config by asset name: {"feature_table": {...}} -> {"ops": {"cmle_demo__feature_table": {...}}}."""
    return {"ops": {f"{DEMO}__{name}": value for name, value in config.items()}}


def simulate_new_events() -> dg.JobDefinition:
    return defs.resolve_job_def(f"{DEMO}_simulate_new_events")


def new_events_sensor() -> dg.SensorDefinition:
    return defs.resolve_sensor_def(f"{DEMO}_new_events_sensor")
