"""Which profiles a rescore covers, and how rescored rows join the scores already in AEP.

The published scores (``<model>/scores/current.json``, a ``ScoreRun``) record the event and profile
batches they reflect and the model that made them. A rescore is incremental, covering only the
profiles that have events in batches the published scores do not reflect, unless something makes
every score stale: another model version, changed profile attributes, replaced event batches, or
scores past ``expires_at``.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from ..ml.feature_set import ID
from ..ml.holdout import HoldoutGroups
from ..ml.ranking import rank_key, thresholds_in_memory
from ..ml.score_summary import ScoredRows
from ..ml.scoring import Bands
from ..storage import Storage
from .feature_sql import scope_in_batches
from .handoff import RescorePlan, ScoreRun

FULL, INCREMENTAL = "full", "incremental"
MODES = ("auto", FULL)
CONVERTED_BAND = "converted"  # written over a profile's last score once it has converted


def plan_rescore(published: ScoreRun | None, *, model_version: str, event_batches: list[str],
                 profile_batches: list[str], cutoff: datetime, requested: str = "auto") -> RescorePlan:
    if requested not in MODES:
        raise ValueError(f"Config 'mode' = {requested!r} is not one of {MODES}; 'auto' rescores only what "
                         "changed, 'full' rescores every profile.")

    def full(reason: str) -> RescorePlan:
        return RescorePlan(FULL, reason, sorted(event_batches), sorted(profile_batches))

    if requested == FULL:
        return full("a full rescore was requested")
    if published is None:
        return full("no scores have been published yet")
    if published.model_version != model_version:
        return full(f"the model changed from {published.model_version} to {model_version}")
    if sorted(published.profile_batches) != sorted(profile_batches):
        return full("the profile dataset has new batches, so profile attributes may have changed")
    replaced = set(published.event_batches) - set(event_batches)
    if replaced:
        return full(f"{len(replaced)} event batch(es) the scores reflect were replaced or deleted")
    expires = datetime.fromisoformat(published.expires_at)
    if expires <= cutoff:
        return full(f"the scores expired at {expires.isoformat()}")
    new = sorted(set(event_batches) - set(published.event_batches))
    reason = (f"{len(new)} new event batch(es)" if new else "no new event batches: nothing to rescore")
    return RescorePlan(INCREMENTAL, reason, sorted(event_batches), sorted(profile_batches), new)


def scope_predicate(plan: RescorePlan) -> str | None:
    """The ``$scope`` of the feature SQL: None for every profile, or the new batches, whose profiles it covers."""
    return None if plan.mode == FULL else scope_in_batches(plan.new_batches)


def load_published(storage: Storage, pointer: str) -> ScoreRun | None:
    return ScoreRun.load_if_any(storage, pointer)


@dataclass
class Merged:
    scores: pl.DataFrame  # the current score of every scored profile
    features: pl.DataFrame  # the features behind those scores
    changes: pl.DataFrame  # rows to write back: rescored profiles, and converted ones marked as such
    replaced: ScoredRows  # the published rows taken out: the rescored and converted profiles'
    added: ScoredRows  # the rescored rows put in

    @property
    def rows(self) -> ScoredRows:
        return ScoredRows(self.scores, self.features)


def merge_rescored(previous_scores: pl.DataFrame, previous_features: pl.DataFrame, rescored: pl.DataFrame,
                   eligible_features: pl.DataFrame, converted_ids: pl.Series, bands: Bands, holdout: HoldoutGroups, *,
                   model_version: str, scored_at: datetime, expires_at: datetime) -> Merged:
    """Rescored rows replace their profiles' previous rows; converted profiles leave the scores.

    Percentiles are ranks in the whole merged population, as a full rescore would give, so the new
    rows land in the right band, and in that band's control group or not as the model's holdout says; the
    other profiles keep the percentile, band and group AEP already holds (a group follows from the identity
    and the band alone, so hashing them again would give the same)."""
    if "group" not in previous_scores.columns:
        previous_scores = previous_scores.with_columns(
            pl.Series("group", holdout.of(previous_scores[ID], previous_scores["band"]),
                      dtype=pl.Utf8))
    touched = pl.concat([rescored[ID], converted_ids]).unique()
    replaced = pl.col(ID).is_in(touched.implode())
    kept = previous_scores.filter(~replaced)
    new_rows = rescored.drop("group", strict=False)
    key = rank_key(new_rows)
    population = pl.concat([kept.select(key, ID), new_rows.select(key, ID)], how="vertical_relaxed")
    new_pct = thresholds_in_memory(population).percentiles(new_rows)  # a row's percentile needs only its own key
    new_rows = new_rows.with_columns(
        pl.Series("percentile", new_pct), pl.Series("decile", np.minimum(new_pct // 10 + 1, 10)),
        pl.Series("band", bands.of(new_pct)))
    new_rows = new_rows.with_columns(
        pl.Series("group", holdout.of(new_rows[ID], new_rows["band"]), dtype=pl.Utf8))
    gone = previous_scores.filter(pl.col(ID).is_in(converted_ids.implode()))[ID]
    markers = converted_markers(gone, new_rows.schema, model_version=model_version, scored_at=scored_at,
                                expires_at=expires_at)
    features = pl.concat([previous_features.filter(~replaced), eligible_features], how="diagonal_relaxed")
    scores = pl.concat([kept, new_rows], how="diagonal_relaxed").select(new_rows.columns)
    return Merged(scores, features, pl.concat([new_rows, markers], how="vertical_relaxed"),
                  ScoredRows(previous_scores.filter(replaced), previous_features.filter(replaced)),
                  ScoredRows(new_rows, eligible_features))


def converted_markers(ids: pl.Series, schema: pl.Schema, *, model_version: str, scored_at: datetime,
                      expires_at: datetime) -> pl.DataFrame:
    """For profiles that converted since their last score: the band 'converted' and no propensity, so they
    leave every band audience (AEP keeps a profile's attributes until a newer batch overwrites them)."""
    stamped = {"band": CONVERTED_BAND, "model_version": model_version, "scored_at": scored_at,
               "expires_at": expires_at}
    return pl.DataFrame({ID: ids}).with_columns(
        *[pl.lit(stamped.get(name), dtype=dtype).alias(name) for name, dtype in schema.items() if name != ID]
    ).select(list(schema))


def merge_into_published(rescored: pl.DataFrame, eligible_features: pl.DataFrame, ineligible_ids: pl.Series,
                         published: ScoreRun, storage: Storage, bands: Bands, holdout: HoldoutGroups, *,
                         model_version: str, scored_at: datetime, expires_at: datetime) -> tuple[Merged, int]:
    """An incremental rescore's rows merged into the published scores, and how many published profiles it
    withdraws because they converted since (``ineligible_ids``: covered profiles out of the population)."""
    with ThreadPoolExecutor(1, thread_name_prefix="published-features") as pool:  # the two reads side by side
        reading_features = pool.submit(storage.read_parquet, [published.features_key])
        previous = storage.read_parquet([published.key])
        previous_features = reading_features.result()
    # A semi-join hashes the few covered ids; is_in would hash the whole published population.
    converted = pl.DataFrame({ID: ineligible_ids}).join(previous.select(ID), on=ID, how="semi",
                                                          maintain_order="left")[ID]
    merged = merge_rescored(previous, previous_features, rescored, eligible_features, converted, bands, holdout,
                            model_version=model_version, scored_at=scored_at, expires_at=expires_at)
    return merged, converted.len()
