"""One model instance as the asset factories see it: its definition, its names, its keys and groups."""

from dataclasses import dataclass
from typing import ClassVar

import dagster as dg

from ..pipeline.naming import Names
from ..pipeline.spec import ModelSpec
from ..pipeline.stage_context import StageContext
from ..resources import AEPResource, MLflowResource, StorageResource

PLATFORM, SOURCE, FEATURES, MODEL, SCORING, ACTIVATION, OUTCOMES, UPLIFT = (
    "platform", "source", "features", "model", "scoring", "activation", "outcomes", "uplift")


@dataclass(frozen=True)
class Instance:
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def names(self) -> Names:
        return self.spec.names

    def stage(self, storage: StorageResource, *, aep: AEPResource | None = None, mlflow: MLflowResource | None = None,
              config: "RunConfig | None" = None) -> StageContext:
        """What the step's stage works with: the definition as this run sees it (the run config's overrides of
        YAML keys written over the YAML, in this one place), storage, and the AEP client and the registry when the
        step has them."""
        spec = config.apply(self.spec) if config is not None else self.spec
        client = aep.client() if aep is not None else None
        if mlflow is None:
            return StageContext(spec, storage.get(), client)
        return StageContext(spec, storage.get(), client, open_registry=mlflow.registry, registry_ready=mlflow.is_open)

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.spec.name, asset])

    def group(self, stage: str) -> str:
        return f"{self.spec.name}_{stage}"

    @property
    def event_source(self) -> dg.AssetKey:
        return self.key("synthetic_events" if self.spec.simulated else "source_events")

    @property
    def sources(self) -> list[dg.AssetKey]:
        if self.spec.simulated:
            return [self.key("synthetic_events"), self.key("synthetic_profiles")]
        return [self.key("source_events"), *([self.key("source_profiles")] if self.spec.profile.dataset else [])]

    @property
    def writes_back(self) -> bool:
        return self.spec.write_back.enabled

    @property
    def learns_uplift(self) -> bool:
        return self.spec.learns_uplift


class RunConfig(dg.Config):
    """A step's run config. Fields that stand in for a YAML key for one run say which in ``YAML_KEYS``; a field
    left at its default leaves the YAML's value (so 0.0 given for a field whose default is None does override)."""

    YAML_KEYS: ClassVar[dict[str, str]] = {}  # field -> the YAML key it overrides, dotted

    def _given(self) -> dict[str, str]:
        """field -> YAML key, for the fields this run sets."""
        return {field: key for field, key in self.YAML_KEYS.items()
                if getattr(self, field) != type(self).model_fields[field].default}

    def yaml_overrides(self) -> dict[str, object]:
        return {key: getattr(self, field) for field, key in self._given().items()}

    def apply(self, spec: ModelSpec) -> ModelSpec:
        """The model's definition for this run: the YAML with this run config's overrides."""
        try:
            return spec.for_run(self.yaml_overrides())
        except ValueError as exc:
            fields = ", ".join(f"{field} (for {key})" for field, key in self._given().items())
            raise ValueError(f"Run config {fields}: {exc}") from None
