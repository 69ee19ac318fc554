"""Publish a simulation: profiles and events into AEP datasets, the truth and the raw frames into storage."""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import polars as pl

from ..aep import AEPClient
from ..simulation import Simulation, SimulationConfig
from ..simulation.continuation import Continuation
from ..simulation.model import traits
from ..simulation.taxonomy import NAMES
from ..simulation.xdm import events_to_xdm, profiles_to_xdm
from ..storage import Storage
from .ingest import append_dataset_rows, replace_dataset_rows
from .naming import Names
from .ownership import ensure_owned_dataset
from .schemas import require_schema

PROFILES_PER_CHUNK = 50_000


@dataclass
class Published:
    dataset: dict
    batch: dict
    rows: int


def publish_profiles(client: AEPClient, profiles: pl.DataFrame, names: Names) -> Published:
    """The simulation's profiles (``Simulation.profiles``), which ``simulate`` hands over before their events."""
    schema = require_schema(client, "profile")
    tenant = client.schemas.tenant_id()
    ds = ensure_owned_dataset(client, names.profile_dataset, schema["$id"], names.model, profile=True,
                              description="Synthetic profiles with attributes.")
    tables = (partial(profiles_to_xdm, profiles.slice(i, PROFILES_PER_CHUNK), tenant)
              for i in range(0, profiles.height, PROFILES_PER_CHUNK))
    batch = replace_dataset_rows(client, ds, tables, owner=names.model)
    return Published(ds, batch, profiles.height)


def publish_events(client: AEPClient, sim: Simulation, names: Names) -> Published:
    """Events in chunks of profiles, so memory stays flat as the simulation grows."""
    schema = require_schema(client, "event")
    tenant = client.schemas.tenant_id()
    ds = ensure_owned_dataset(client, names.event_dataset, schema["$id"], names.model, profile=False,
                              description="Synthetic experience events (CMLE taxonomy).")
    first = sim.profiles["profile_index"].min()
    bounds = sim.events["profile_index"].search_sorted(
        pl.Series(range(first, first + sim.profiles.height + PROFILES_PER_CHUNK, PROFILES_PER_CHUNK)))

    def chunks():  # each chunk's XDM is built in an encoding thread (see ingest.Tables)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            if hi > lo:
                yield partial(events_to_xdm, sim.events.slice(lo, hi - lo), sim.profiles, tenant, sim.config.seed,
                              first_event_number=lo)

    batch = replace_dataset_rows(client, ds, chunks(), owner=names.model)
    return Published(ds, batch, sim.events.height)


def publish_new_events(client: AEPClient, continuation: Continuation, names: Names) -> Published:
    """The new period's events as one new batch of the events dataset, next to the earlier ones."""
    require_schema(client, "event")
    ds = client.catalog.find_dataset(names.event_dataset)
    if ds is None:
        raise LookupError(f"Dataset {names.event_dataset!r} does not exist yet; materialise "
                          f"{names.model}/synthetic_events first.")
    sim = continuation.simulation
    # Event ids continue after the history's, so every event keeps a unique _id.
    first_number = sim.events.height - continuation.new_events.height
    table = events_to_xdm(continuation.new_events, sim.profiles, client.schemas.tenant_id(), sim.config.seed,
                          first_event_number=first_number)
    batch = append_dataset_rows(client, ds, [table], owner=names.model)
    return Published(ds, batch, continuation.new_events.height)


def save_simulation(storage: Storage, prefix: str, sim: Simulation) -> dict[str, str]:
    """Everything needed to rebuild the simulation later (for the oracle, or to continue it)."""
    cfg = sim.config
    meta = {"n_profiles": cfg.n_profiles, "seed": cfg.seed, "as_of": cfg.as_of.isoformat(), "model": cfg.model,
            "first_profile_index": cfg.first_profile_index, "until": sim.until.isoformat()}
    return {
        "config": storage.write_bytes(f"{prefix}/config.json", json.dumps(meta, indent=2).encode()),
        "profiles": storage.write_parquet(f"{prefix}/profiles.parquet", sim.profiles),
        "events": storage.write_parquet(f"{prefix}/events.parquet", sim.events),
        "outcomes": storage.write_parquet(f"{prefix}/outcomes.parquet", sim.truth),
    }


def simulation_until(storage: Storage, prefix: str) -> datetime:
    """The simulated world's present: where its events end (as_of, or the end of the last continuation)."""
    meta = json.loads(storage.read_bytes(f"{prefix}/config.json"))
    return datetime.fromisoformat(meta.get("until", meta["as_of"]))


def load_simulation(storage: Storage, prefix: str) -> Simulation:
    if not storage.exists(f"{prefix}/config.json"):
        raise FileNotFoundError(f"No simulation at {storage.uri(prefix)}; materialise synthetic_profiles first.")
    meta = json.loads(storage.read_bytes(f"{prefix}/config.json"))
    cfg = SimulationConfig(n_profiles=meta["n_profiles"], seed=meta["seed"],
                           as_of=datetime.fromisoformat(meta["as_of"]), model=meta["model"],
                           first_profile_index=meta["first_profile_index"])
    profiles = storage.read_parquet([f"{prefix}/profiles.parquet"])
    events = storage.read_parquet([f"{prefix}/events.parquet"]).with_columns(pl.col("event_type").cast(pl.Enum(NAMES)))
    return Simulation(cfg, profiles, events, storage.read_parquet([f"{prefix}/outcomes.parquet"]),
                      traits(cfg.behaviour, profiles, cfg.as_of.year),
                      until=datetime.fromisoformat(meta.get("until", meta["as_of"])))
