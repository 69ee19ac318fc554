"""The ``aep_assets`` code location."""

import dagster as dg

from .assets import activation, features, model, platform, scoring, synthetic
from .jobs import pipeline_job
from .resources import build_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([platform, synthetic, features, model, scoring, activation]),
    asset_checks=dg.load_asset_checks_from_modules([platform, synthetic, features, model, scoring, activation]),
    jobs=[pipeline_job],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
