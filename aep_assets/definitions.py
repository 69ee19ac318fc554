"""The ``aep_assets`` code location: every model instance under defs/ and $AEP_ASSETS_MODELS."""

import logging
import os
from pathlib import Path

import dagster as dg

from . import defs as defs_package
from .components.propensity_model import PropensityModel
from .resources import build_resources, describe_target

log = logging.getLogger(__name__)
MODELS_ENV = "AEP_ASSETS_MODELS"


def user_model_files(env: dict[str, str] | None = None) -> list[Path]:
    folder = (env if env is not None else os.environ).get(MODELS_ENV)
    if not folder:
        return []
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{MODELS_ENV}={folder!r} is not a folder; point it at the folder of your models' "
                                "*.yaml files, or unset it.")
    return sorted(root.rglob("*.yaml"))


def build_definitions() -> dg.Definitions:
    models = [dg.load_from_defs_folder(path_within_project=Path(defs_package.__file__).parent)]
    for path in user_model_files():
        models.append(PropensityModel.from_file(path).build_defs(None))
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
