"""The PropensityModel component: one YAML model definition, one prefixed asset graph.

``aep_assets/defs/<name>/defs.yaml`` (or any ``*.yaml`` under ``$AEP_ASSETS_MODELS``) holds
``type: aep_assets.PropensityModel`` and the model's attributes (see pipeline/spec.py and the
README). Each instance builds its own assets under the key prefix ``<name>/``, with its checks, its
jobs (``<name>``, ``<name>_rescore``, ``<name>_retrain``), its new-events sensor and its weekly
retraining schedule.
"""

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ValidationError

from ..assets import activation, features, model, outcomes, platform, scoring, synthetic, uplift
from ..assets.instance import Instance
from ..jobs import model_jobs, simulate_new_events_job
from ..pipeline.spec import ModelSpec
from ..sensors import model_automation


def build_model_defs(spec: ModelSpec) -> dg.Definitions:
    m = Instance(spec)
    assets = [*platform.build(m), *(synthetic.build(m) if spec.simulated else []), *features.build(m),
              *model.build(m), *scoring.build(m), *(activation.build(m) if m.writes_back else []), *outcomes.build(m),
              *(uplift.build(m) if m.learns_uplift else [])]
    jobs = model_jobs(m)
    sensors, schedule = model_automation(m, jobs)
    extra_jobs = [simulate_new_events_job(m)] if spec.simulated else []
    return dg.Definitions(assets=assets, jobs=[*jobs, *extra_jobs], sensors=sensors, schedules=[schedule])


class PropensityModel(dg.Component):
    """A propensity model over AEP Experience Event datasets, defined in YAML."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return ModelSpec

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> "PropensityModel":
        if not isinstance(attributes, ModelSpec):
            raise ValueError(f"{context.path}: a PropensityModel needs attributes (at least name, goal and "
                             "events.datasets); see the README, 'Your own data'.")
        return cls(attributes)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_model_defs(self.spec)

    @staticmethod
    def from_file(path: Path) -> "PropensityModel":
        """An instance from a user's YAML file (``$AEP_ASSETS_MODELS``), checked like one under defs/."""
        import yaml

        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise ValueError(f"{path}{where}: not valid YAML ({problem}); check the indentation and quotes there."
                             ) from None
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: holds {type(doc).__name__}, not a model; a model file is a mapping with "
                             "'type: aep_assets.PropensityModel' and 'attributes'.")
        if doc.get("type") not in ("aep_assets.PropensityModel", "aep_assets.components.PropensityModel"):
            raise ValueError(f"{path}: 'type' is {doc.get('type')!r}; a model file says "
                             "'type: aep_assets.PropensityModel'.")
        try:
            return PropensityModel(ModelSpec.model_validate(doc.get("attributes") or {}))
        except ValidationError as exc:
            problems = "; ".join(f"attributes.{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                                 for e in exc.errors())
            raise ValueError(f"{path}: {problems}") from None
