"""Scoring in chunks, so memory does not grow with the population.

A ``ScoringJob`` is everything a scoring run needs as paths and JSON, so the same job runs in this
process, in a subprocess or on Spark (``aep_assets/external/``). Every engine scores with
``Scorer.unranked`` and ranks with ``finish``; only the out-of-core sort that finds the percentile
thresholds differs (DuckDB here, Spark there), and both order by (propensity, profile_id).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from .calibration import Calibrator
from .drift import DriftReference
from .explain import REASON_COLUMNS, binary_sigmoid, contributions, predict_with_reasons
from .feature_set import ELIGIBLE, ID, PREDICTED_VALUE, feature_matrix
from .holdout import HoldoutGroups
from .ranking import PROPENSITY, RankThresholds, thresholds_duckdb, thresholds_in_memory
from .score_summary import ScoreSummary
from .scoring import Bands
from .value import expected_value

if TYPE_CHECKING:
    import lightgbm as lgb

CHUNK_ROWS = 100_000
SCORING_THREADS = min(2, os.cpu_count() or 1)  # chunks scored at once, each by its own thread and Scorer
UNRANKED_SCHEMA = {ID: pl.Utf8, "propensity": pl.Float64, "score": pl.Int64, **dict.fromkeys(REASON_COLUMNS, pl.Utf8)}
TIMESTAMP = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class ScoringJob:
    """What a scoring job receives. ``inputs`` are the scoring features' Parquet files; the job writes
    ``scores`` and ``features`` (the eligible rows it scored) under ``output_dir``: one file each, or a
    folder of parts from Spark."""

    model_path: str  # the model in LightGBM's text format
    calibrator: dict
    features: list[str]
    inputs: list[str]
    output_dir: str
    bands: dict
    model_version: str
    scored_at: str  # ISO, UTC
    expires_at: str
    reason_method: str = "shap"
    holdout_share: float = 0.0
    holdout_salt: str = ""
    drift_reference: dict | None = None
    chunk_rows: int = CHUNK_ROWS
    value_model_path: str | None = None  # a value goal's E[value | some] regressor, LightGBM's text format
    value_scale: float = 1.0  # and its calibration of the total

    @property
    def rank_key(self) -> str:
        return PREDICTED_VALUE if self.value_model_path else PROPENSITY

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> ScoringJob:
        return ScoringJob(**data)

    def stamp(self) -> Stamp:
        return Stamp(Bands(**self.bands), self.model_version, datetime.fromisoformat(self.scored_at),
                     datetime.fromisoformat(self.expires_at), HoldoutGroups(self.holdout_share, self.holdout_salt))

    def scorer(self, model_text: str | None = None, value_text: str | None = None) -> Scorer:
        import lightgbm as lgb
        text = model_text if model_text is not None else Path(self.model_path).read_text()
        if value_text is None and self.value_model_path:
            value_text = Path(self.value_model_path).read_text()
        return Scorer(lgb.Booster(model_str=text), Calibrator.from_dict(self.calibrator), tuple(self.features),
                      self.reason_method, lgb.Booster(model_str=value_text) if value_text else None, self.value_scale)

    def drift(self) -> DriftReference | None:
        return DriftReference.from_json(self.drift_reference) if self.drift_reference else None


@dataclass(frozen=True)
class JobOutcome:
    summary: ScoreSummary
    metadata: dict  # what the job reported: engine, seconds, peak memory


class JobRunner(Protocol):
    """Runs a scoring job somewhere: in this process, a subprocess, or on Spark (assets/scoring_engines.py)."""

    remote: bool  # True: the job reads and writes storage URIs itself (a cluster), not files on this machine

    def __call__(self, job: ScoringJob) -> JobOutcome: ...


@dataclass(frozen=True)
class Stamp:
    """What every score of a run carries besides its propensity: bands, model version, validity, group."""

    bands: Bands
    model_version: str
    scored_at: datetime
    expires_at: datetime
    holdout: HoldoutGroups = HoldoutGroups()


@dataclass(frozen=True)
class Scorer:
    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    reason_method: str = "shap"
    value_booster: lgb.Booster | None = None  # a value goal's E[value | some] regressor
    value_scale: float = 1.0

    def unranked(self, eligible: pl.DataFrame) -> pl.DataFrame:
        """Propensity, 0-100 score, reason codes (of the propensity) and, for a value goal, the predicted value of
        each row: everything that needs no other row."""
        schema = {**UNRANKED_SCHEMA, **({PREDICTED_VALUE: pl.Float64} if self.value_booster else {})}
        if eligible.height == 0:
            return pl.DataFrame(schema=schema)
        x = feature_matrix(eligible, self.features)
        probability, reasons = predict_with_reasons(self.booster, x, self.contribute, self.sigmoid)
        p = self.calibrator.apply(probability)
        names = pl.Series(self.features, dtype=pl.Utf8)
        value = ({PREDICTED_VALUE: expected_value(p, self.value_scale * self.value_booster.predict(x))}
                 if self.value_booster else {})
        return pl.DataFrame({
            ID: eligible[ID].cast(pl.Utf8), "propensity": p, "score": np.rint(100 * p).astype(np.int64),
            **{name: names.gather(reasons[k]) for k, name in enumerate(REASON_COLUMNS)}, **value},
            schema=schema)

    @cached_property
    def contribute(self):
        return contributions(self.booster, self.reason_method)

    @cached_property
    def sigmoid(self):
        return binary_sigmoid(self.booster)

    def features_frame(self, eligible: pl.DataFrame) -> pl.DataFrame:
        """The scored rows' features, with one type per column whichever file they came from."""
        return eligible.select(pl.col(ID).cast(pl.Utf8), *[pl.col(c).cast(pl.Float64) for c in self.features])


def finish(unranked: pl.DataFrame, thresholds: RankThresholds, stamp: Stamp) -> pl.DataFrame:
    """The scores' final columns, given the population's rank thresholds."""
    pct = thresholds.percentiles(unranked)
    band = stamp.bands.of(pct)
    n = unranked.height
    groups = stamp.holdout.of(unranked[ID], band)
    return pl.DataFrame({
        ID: unranked[ID], "propensity": unranked["propensity"], "score": unranked["score"], "percentile": pct,
        "decile": np.minimum(pct // 10 + 1, 10), "band": pl.Series(band, dtype=pl.Utf8),
        "model_version": pl.repeat(stamp.model_version, n, dtype=pl.Utf8, eager=True),
        "scored_at": pl.repeat(stamp.scored_at, n, dtype=TIMESTAMP, eager=True),
        "expires_at": pl.repeat(stamp.expires_at, n, dtype=TIMESTAMP, eager=True),
        **{name: unranked[name] for name in REASON_COLUMNS},
        "group": pl.Series(groups, dtype=pl.Utf8),
        **({PREDICTED_VALUE: unranked[PREDICTED_VALUE]} if PREDICTED_VALUE in unranked.columns else {}),
    })


def score_in_memory(scorer: Scorer, eligible: pl.DataFrame, stamp: Stamp) -> pl.DataFrame:
    """Every row at once: for small populations and the incremental rescore's rows."""
    unranked = scorer.unranked(eligible)
    return finish(unranked, thresholds_in_memory(unranked), stamp)


def read_chunks(files: list[str] | list[Path], rows: int, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
    for f in files:
        parquet = pq.ParquetFile(f)
        wanted = [c for c in columns if c in parquet.schema_arrow.names] if columns else None
        for batch in parquet.iter_batches(batch_size=rows, columns=wanted):
            yield pl.from_arrow(batch)


class ParquetSink:
    """Chunks appended to one Parquet file, one row group each."""

    def __init__(self, path: Path) -> None:
        self.path, self._writer = path, None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self, empty: pl.DataFrame) -> None:
        """``empty`` gives the file its columns when no chunk came."""
        if self._writer is None:
            empty.write_parquet(self.path)
        else:
            self._writer.close()


def _scored_side_by_side(job: ScoringJob, first: Scorer, chunks: Iterator[pl.DataFrame]
                         ) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Each chunk, its eligible rows and their unranked scores, in the chunks' order, with up to SCORING_THREADS
    chunks scoring at once (TreeSHAP's numpy work leaves the GIL; one chunk at a time kept one core). Each thread
    has a Scorer of its own, loaded from the job: TreeSHAP keeps per-tree caches, and LightGBM sets a booster's
    iteration range for each prediction, so two threads must not share one. A job of one chunk loads one."""
    scorers = [first]
    in_flight: deque = deque()
    with ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="score-chunk") as pool:
        for n, chunk in enumerate(chunks):
            if len(in_flight) == SCORING_THREADS:  # the oldest chunk's scorer is the one this chunk takes
                yield _result(in_flight.popleft())
            if n == len(scorers) < SCORING_THREADS:
                scorers.append(job.scorer())
            eligible = chunk.filter(pl.col(ELIGIBLE) == 1)
            in_flight.append((chunk, eligible, pool.submit(scorers[n % SCORING_THREADS].unranked, eligible)))
        while in_flight:
            yield _result(in_flight.popleft())


def _result(item: tuple[pl.DataFrame, pl.DataFrame, Future]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    chunk, eligible, scored = item
    return chunk, eligible, scored.result()


def run_chunked(job: ScoringJob, *, memory_limit: str = "256MB") -> ScoreSummary:
    """The two passes on one machine: score and write each chunk unranked, find the rank thresholds with
    DuckDB out of core, then rank each chunk and write the scores. Writes ``scores.parquet`` and
    ``features.parquet`` under ``job.output_dir``."""
    scorer, stamp, drift = job.scorer(), job.stamp(), job.drift()
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ScoreSummary()
    unranked_path = out / "_unranked.parquet"
    unranked_sink, features_sink = ParquetSink(unranked_path), ParquetSink(out / "features.parquet")
    summary.eligible_rows = 0
    chunks = read_chunks(job.inputs, job.chunk_rows, [ID, ELIGIBLE, *job.features])
    for chunk, eligible, scored in _scored_side_by_side(job, scorer, chunks):
        summary.eligible_rows += eligible.height
        summary.ineligible_rows += chunk.height - eligible.height
        if eligible.height:
            unranked_sink.write(scored)
            features_sink.write(scorer.features_frame(eligible))
            summary.add_drift(drift, eligible, scored["propensity"].to_numpy())
    empty = scorer.unranked(pl.DataFrame())
    unranked_sink.close(empty)
    features_sink.close(pl.DataFrame(schema={ID: pl.Utf8, **dict.fromkeys(job.features, pl.Float64)}))
    thresholds = thresholds_duckdb([unranked_path], memory_limit=memory_limit, temp_dir=out, key=job.rank_key)
    scores_sink = ParquetSink(out / "scores.parquet")
    for chunk in read_chunks([unranked_path], job.chunk_rows):
        final = finish(chunk, thresholds, stamp)
        scores_sink.write(final)
        summary.add_scores(final)
    scores_sink.close(finish(empty, thresholds, stamp))
    unranked_path.unlink()
    summary.duplicate_ids = thresholds.duplicate_ids
    return summary
