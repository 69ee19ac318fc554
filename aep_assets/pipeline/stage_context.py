"""What every stage of one model instance works with, passed as one value."""

from dataclasses import dataclass

from ..aep import AEPClient
from ..storage import Storage
from ..tracking.registry import ModelRegistry
from .naming import Names
from .spec import ModelSpec


@dataclass(frozen=True)
class StageContext:
    """The model's definition (and the names derived from it), the AEP client, storage and the MLflow registry.
    Assets build one per step (assets/instance.py); a stage gets only the services its step has."""

    spec: ModelSpec
    store: Storage
    client: AEPClient | None = None
    registry: ModelRegistry | None = None

    @property
    def names(self) -> Names:
        return self.spec.names
