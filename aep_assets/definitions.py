"""The ``aep_assets`` code location."""

import dagster as dg

from .assets import activation, features, model, platform, scoring, synthetic
from .jobs import pipeline_job
from .resources import build_resources

ASSET_MODULES = [platform, synthetic, features, model, scoring, activation]
ALL_ASSETS = dg.load_assets_from_modules(ASSET_MODULES)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[pipeline_job],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
