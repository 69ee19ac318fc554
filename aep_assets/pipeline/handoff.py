"""What one asset hands the next, kept in storage as small JSON documents.

Each is a frozen dataclass with ``to_json``/``from_json``, so a field is spelled in one place; a field that is
itself a typed value (a feature set, a rescore plan, band thresholds) is written as its JSON and read back as
its type. The graph shows every hand-off: an asset that loads one depends on the asset that saves it.
"""

import dataclasses
import io
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Self

import polars as pl

from ..ml.feature_set import FeatureSet
from ..ml.scoring import Bands
from ..storage import Storage


class MismatchedHandoff(ValueError):
    """A hand-off was made for another model version or feature set than the one its reader works with."""


def _encode(value):
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return asdict(value)
    return value


def _decode(kind, value):
    if value is None or not isinstance(kind, type):
        return value
    if hasattr(kind, "from_json"):
        return kind.from_json(value)
    if dataclasses.is_dataclass(kind):
        return kind(**value)
    return value


class Handoff:
    def to_json(self) -> dict:
        return {f.name: _encode(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> Self:
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: _decode(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data})

    def save(self, storage: Storage, key: str) -> str:
        return storage.write_bytes(key, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, storage: Storage, key: str, *, asset: str) -> Self:
        if not storage.exists(key):
            raise FileNotFoundError(f"Nothing at {storage.uri(key)}; materialise {asset} first.")
        try:
            return cls.from_json(json.loads(storage.read_bytes(key)))
        except TypeError as exc:  # a field missing: written by an earlier version of the project
            raise MismatchedHandoff(f"{storage.uri(key)} is not a {cls.__name__} this version reads ({exc}); "
                                    f"materialise {asset} again.") from None

    @classmethod
    def load_if_any(cls, storage: Storage, key: str) -> Self | None:
        return cls.from_json(json.loads(storage.read_bytes(key))) if storage.exists(key) else None


TEMPORAL, ADOBE_COMPATIBLE = "temporal", "adobe_compatible"  # a feature table's design


@dataclass(frozen=True)
class FeatureTable(Handoff):
    """The feature table a training run reads: its dataset and table, the feature set its columns are, and the
    design it was built with (``temporal``, or ``adobe_compatible``: Adobe's notebook columns)."""

    dataset_id: str
    table: str
    design: str
    feature_set: FeatureSet


@dataclass(frozen=True)
class TrainingExport(Handoff):
    """The feature table's rows, exported to storage, with the feature set and design they were built with."""

    dataset_id: str
    keys: list[str]
    run_id: str
    test_cutoff: str
    horizon_days: int
    feature_set: FeatureSet
    design: str


@dataclass(frozen=True)
class RescorePlan:
    """Which profiles a scoring run covers (rescoring.py decides): ``full``, or ``incremental`` over the profiles
    with events in ``new_batches``."""

    mode: str
    reason: str
    event_batches: list[str]  # every active event batch: what the new scores will reflect
    profile_batches: list[str]
    new_batches: list[str] = field(default_factory=list)  # incremental: the batches not yet reflected

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScoringExport(Handoff):
    """The scoring features as of ``cutoff`` for the champion ``model_version``: every profile, or those an
    incremental plan covers."""

    cutoff: str
    plan: RescorePlan
    model_version: str
    keys: list[str] = field(default_factory=list)  # empty: nothing to rescore
    dataset_id: str = ""

    def require_model(self, model_version: str) -> None:
        """Scores come only from features built for the model that scores them."""
        if self.model_version != model_version:
            raise MismatchedHandoff(
                f"scoring_features were built for model version {self.model_version}, but the champion is now "
                f"{model_version} (promoted since); materialise scoring_features again, then propensity_scores.")


@dataclass(frozen=True)
class ScoreRun(Handoff):
    """A scoring run: written by propensity_scores as the candidate, and once AEP holds it, the published
    scores (with ``batch_id``). ``dry_run`` scores were never written to AEP."""

    key: str
    features_key: str
    changes_key: str
    model_version: str
    bands: Bands
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
    summary_key: str = ""  # the scores' summary (JSON), which an incremental rescore updates; "": none kept


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
        return member_file(storage, self.files[band])


def member_file(storage: Storage, key: str) -> pl.Series:
    """The identities in an activated audience's file (the destination flow's CSV)."""
    data = io.BytesIO(storage.read_bytes(key))
    return pl.read_csv(data, columns=["identity"], schema_overrides={"identity": pl.Utf8})["identity"]


@dataclass(frozen=True)
class UpliftModelRun(Handoff):
    """The latest uplift model: what it learnt from, how it was sized and judged, and whether it may steer
    audiences (``gated``: it beat random targeting with confidence). ``model_key`` is empty when no model was
    trained (too few randomised profiles, or no closed window)."""

    version: str
    trained_at: str
    status: str
    model_key: str
    runs: list[str]  # scored_at of the scoring runs whose windows it learnt from
    sizing: dict
    rows: dict  # treated / control profiles in training and evaluation
    evaluation: dict  # the model's ranking on the evaluation profiles (ml/uplift.RankingEvaluation.summary)
    propensity_evaluation: dict  # the propensity used as an uplift ranking, on the same profiles
    gated: bool = False


@dataclass(frozen=True)
class UpliftScoreRun(Handoff):
    """Uplift scores of one published scoring run: per profile the predicted uplift and band (``persuadable`` or
    ``other``; ``none`` for every profile when no gated model exists, so nothing is steered)."""

    scored_at: str
    model_version: str
    gated: bool
    key: str  # Parquet: identity, uplift, uplift_band, group
    persuadable: int
    threshold: float  # the lowest predicted uplift in the persuadable audience
    batch_id: str = ""


@dataclass(frozen=True)
class UpliftActivation(Handoff):
    """The persuadable audience of one published run, activated: its member file and its segments' sizes."""

    scored_at: str
    activated_at: str
    file: str  # storage key of the CSV of activated members
    members: int
    controls: int

    def identities(self, storage: Storage) -> pl.Series:
        return member_file(storage, self.file)
