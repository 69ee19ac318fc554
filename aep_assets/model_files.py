"""Users' model files (``$AEP_ASSETS_MODELS``): each loaded on its own, so one broken file stops no other model.

A broken file is reported where a user looks: in the UI as an asset under ``model_errors/`` whose description
is the error, in the log of every process that loads the code location, and by ``python -m
aep_assets.model_files [NAME]`` (which ``./run model`` calls first) with the file, the line and the fix.
"""

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from .components.propensity_model import PropensityModel

log = logging.getLogger(__name__)
MODELS_ENV = "AEP_ASSETS_MODELS"
DEMO_ENV = "AEP_ASSETS_DEMO"
ERRORS_GROUP = "model_errors"


@dataclass(frozen=True)
class BrokenModel:
    path: Path
    error: str

    def asset(self) -> dg.AssetSpec:
        """What the UI shows in place of the model: its file and error, nothing to materialise."""
        name = re.sub(r"[^A-Za-z0-9_]", "_", self.path.stem) or "model"
        return dg.AssetSpec(key=[ERRORS_GROUP, name], group_name=ERRORS_GROUP, kinds={"yaml"},
                            description=f"This model file did not load, so it has no assets. {self.error}",
                            metadata={"file": str(self.path), "error": self.error})


def user_model_files(env: dict[str, str] | None = None) -> list[Path]:
    folder = (env if env is not None else os.environ).get(MODELS_ENV)
    if not folder:
        return []
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{MODELS_ENV}={folder!r} is not a folder; point it at the folder of your models' "
                                "*.yaml files, or unset it.")
    return sorted(root.rglob("*.yaml"))


def load_user_models(env: dict[str, str] | None = None) -> tuple[list[PropensityModel], list[BrokenModel]]:
    models, broken = [], []
    for path in user_model_files(env):
        try:
            models.append(PropensityModel.from_file(path))
        except ValueError as exc:
            broken.append(BrokenModel(path, str(exc)))
            log.error("model file %s did not load: %s", path, exc)
    return models, broken


def serves_demo(env: dict[str, str] | None = None) -> bool:
    """The demo loads on the local sandbox; against a real org only with ``AEP_ASSETS_DEMO=1``, so its assets and
    sensors never reach an org that did not ask for them."""
    env = os.environ if env is None else env
    if env.get(DEMO_ENV):
        return env[DEMO_ENV].lower() in ("1", "true", "yes")
    return not env.get("AEP_CLIENT_ID")


def main(argv: list[str]) -> int:
    """Report every broken model file; with a NAME, fail unless that model loads."""
    models, broken = load_user_models()
    for b in broken:
        print(f"error: {b.error}", file=sys.stderr)
    if argv and argv[0] not in {m.spec.name for m in models} and broken:
        print(f"error: model {argv[0]!r} is not among the models that loaded; fix the file above.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
