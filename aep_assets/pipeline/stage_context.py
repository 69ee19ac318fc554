"""What every stage of one model instance works with, passed as one value."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

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
    open_registry: Callable[[], ModelRegistry] | None = None
    registry_ready: Callable[[], bool] = lambda: True  # whether ``registry`` answers without waiting

    @cached_property
    def registry(self) -> ModelRegistry | None:
        """MLflow's registry, opened when a stage first asks for it: a run opens the store on a thread of its own
        (seconds in a new process), and a stage can start its AEP work before it waits for it."""
        return self.open_registry() if self.open_registry is not None else None

    @property
    def names(self) -> Names:
        return self.spec.names
