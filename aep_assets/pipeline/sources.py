"""The datasets a model reads, resolved from its YAML (or, for the demo, from the simulation's names)."""

from dataclasses import dataclass

from ..aep import AEPClient
from ..aep.catalog import Catalog
from .naming import Names
from .spec import ModelSpec


@dataclass(frozen=True)
class SourceDataset:
    """A dataset as the model reads it: Catalog's id and name, its Query Service table and its schema."""

    id: str
    name: str
    table: str
    schema_id: str

    @classmethod
    def of(cls, dataset: dict) -> "SourceDataset":
        return cls(dataset["id"], dataset.get("name", dataset["id"]), Catalog.table_name(dataset),
                   (dataset.get("schemaRef") or {}).get("id", ""))


@dataclass(frozen=True)
class Sources:
    """The datasets a model reads: one or more event datasets, and an optional profile dataset."""

    events: tuple[SourceDataset, ...]
    profiles: SourceDataset | None = None

    @property
    def event_tables(self) -> list[str]:
        return [ds.table for ds in self.events]

    @property
    def event_dataset_ids(self) -> list[str]:
        return [ds.id for ds in self.events]

    @property
    def profile_table(self) -> str | None:
        return self.profiles.table if self.profiles else None

    @property
    def dataset_ids(self) -> list[str]:
        return [ds.id for ds in (*self.events, *([self.profiles] if self.profiles else []))]


def resolve_sources(client: AEPClient, spec: ModelSpec, names: Names) -> Sources:
    if spec.simulated:
        events = client.catalog.find_dataset(names.event_dataset)
        profiles = client.catalog.find_dataset(names.profile_dataset)
        if events is None or profiles is None:
            raise LookupError(f"The simulated datasets of model {spec.name!r} do not exist yet; materialise "
                              f"{spec.name}/synthetic_profiles first.")
        return Sources((SourceDataset.of(events),), SourceDataset.of(profiles))
    events = tuple(SourceDataset.of(client.catalog.resolve_dataset(d)) for d in spec.events.datasets)
    profiles = SourceDataset.of(client.catalog.resolve_dataset(spec.profile.dataset)) if spec.profile.dataset else None
    return Sources(events, profiles)
