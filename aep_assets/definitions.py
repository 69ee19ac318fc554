"""The ``aep_assets`` code location: every model instance under defs/ and $AEP_ASSETS_MODELS."""

import logging
from pathlib import Path

import dagster as dg

from . import defs as defs_package
from .model_files import load_user_models, serves_demo
from .resources import build_resources, describe_target

log = logging.getLogger(__name__)


def build_definitions() -> dg.Definitions:
    models = [dg.load_from_defs_folder(path_within_project=Path(defs_package.__file__).parent)] if serves_demo() \
        else []
    loaded, broken = load_user_models()
    models += [m.build_defs(None) for m in loaded]
    if broken:
        models.append(dg.Definitions(assets=[b.asset() for b in broken]))
    resources = build_resources()
    log.info("aep_assets writes to %s", describe_target(resources))
    return dg.Definitions.merge(*models, dg.Definitions(resources=resources, executor=dg.in_process_executor))


defs = build_definitions()


def materializable_assets() -> list[dg.AssetsDefinition]:
    """Every asset this location can materialise (source datasets of the org's are only observed)."""
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]


def op_config(model: str, config: dict) -> dict:
    """Run config by asset name: for model ``m``, ``{"feature_table": {...}}`` becomes
    ``{"ops": {"m__feature_table": {...}}}``."""
    return {"ops": {f"{model}__{name}": value for name, value in config.items()}}
