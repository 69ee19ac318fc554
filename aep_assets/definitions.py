"""The ``aep_assets`` code location."""

import dagster as dg

from .assets import activation, features, model, platform, scoring, synthetic
from .jobs import pipeline_job, rescore_job, retrain_job, simulate_new_events
from .resources import build_resources
from .sensors import new_events_sensor, weekly_retraining

ASSET_MODULES = [platform, synthetic, features, model, scoring, activation]
ALL_ASSETS = dg.load_assets_from_modules(ASSET_MODULES)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[pipeline_job, rescore_job, retrain_job, simulate_new_events],
    sensors=[new_events_sensor],
    schedules=[weekly_retraining],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
