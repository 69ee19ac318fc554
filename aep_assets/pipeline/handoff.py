"""What one asset hands the next, kept in storage as small JSON documents.

Each is a frozen dataclass with ``to_json``/``from_json``, so a field is spelled in one place.
"""

import io
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Self

import polars as pl

from ..ml.scoring import Bands
from ..storage import Storage


class Handoff:
    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, storage: Storage, key: str) -> str:
        return storage.write_bytes(key, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, storage: Storage, key: str, *, asset: str) -> Self:
        if not storage.exists(key):
            raise FileNotFoundError(f"Nothing at {storage.uri(key)}; materialise {asset} first.")
        return cls.from_json(json.loads(storage.read_bytes(key)))

    @classmethod
    def load_if_any(cls, storage: Storage, key: str) -> Self | None:
        return cls.from_json(json.loads(storage.read_bytes(key))) if storage.exists(key) else None


@dataclass(frozen=True)
class FeatureTable(Handoff):
    """The feature table a training run reads: its dataset and table, and the design it was built with."""

    dataset_id: str
    table: str
    design: str


@dataclass(frozen=True)
class TrainingExport(Handoff):
    """The feature table's rows, exported to storage."""

    dataset_id: str
    keys: list[str]
    run_id: str
    test_cutoff: str
    horizon_days: int


@dataclass(frozen=True)
class ScoringExport(Handoff):
    """The scoring features as of ``cutoff``: every profile, or those an incremental plan covers."""

    cutoff: str
    plan: dict  # RescorePlan.to_json()
    keys: list[str] = field(default_factory=list)  # empty: nothing to rescore
    dataset_id: str = ""


@dataclass(frozen=True)
class ScoreRun(Handoff):
    """A scoring run: written by propensity_scores as the candidate, and once AEP holds it, the published
    scores (with ``batch_id``). ``dry_run`` scores were never written to AEP."""

    key: str
    features_key: str
    changes_key: str
    model_version: str
    bands: dict
    expected_conversion_rate: dict
    horizon_days: int | None
    cutoff: str
    scored_at: str
    expires_at: str
    mode: str
    reason: str
    event_batches: list[str]
    profile_batches: list[str]
    drift: str
    batch_id: str = ""
    calibration_rows: int = 0  # labelled rows the model's calibration was fitted on (for outcome intervals)
    expected_value: dict = field(default_factory=dict)  # a value goal: held-out mean value per band

    @property
    def band_thresholds(self) -> Bands:
        return Bands(**self.bands)


@dataclass(frozen=True)
class ActivationRun(Handoff):
    """An activation of the band audiences: which published scores it acted on, and each band's member file."""

    scored_at: str  # the ScoreRun it activated
    cutoff: str
    activated_at: str
    files: dict  # band -> storage key of the CSV of activated members
    holdout_share: float = 0.0

    def members(self, storage: Storage, band: str) -> pl.Series:
        """The identities activated in ``band``'s audience."""
        data = io.BytesIO(storage.read_bytes(self.files[band]))
        return pl.read_csv(data, columns=["identity"], schema_overrides={"identity": pl.Utf8})["identity"]
