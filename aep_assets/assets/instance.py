"""One model instance as the asset factories see it: its definition, its names, its keys and groups."""

from dataclasses import dataclass

import dagster as dg

from ..pipeline.naming import Names
from ..pipeline.spec import ModelSpec

PLATFORM, SOURCE, FEATURES, MODEL, SCORING, ACTIVATION, OUTCOMES = (
    "platform", "source", "features", "model", "scoring", "activation", "outcomes")


@dataclass(frozen=True)
class Instance:
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def names(self) -> Names:
        return Names(self.spec.name, self.spec.write_back.dataset)

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
