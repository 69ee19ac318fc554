"""Percentiles over the whole scored population without holding it: an exact two-pass rank.

A profile's percentile is ``floor(100 * rank / n)``, its rank being its place (from 0) when every
scored profile is ordered by ``(propensity, profile_id)`` (a value goal: ``(predicted_value, profile_id)``).
The identity breaks ties, so the result does not depend on the order rows arrive in, which differs between
one process and Spark.

``floor(100 * rank / n) >= k`` exactly when ``rank >= ceil(k * n / 100)``, so the 99 keys found at
those ranks decide every percentile: pass one finds them (an out-of-core sort, in DuckDB or Spark),
pass two counts, per row, the keys at or below its own (``RankThresholds.percentiles``).
"""

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from .feature_set import ID, PREDICTED_VALUE

PROPENSITY = "propensity"


def threshold_ranks(rows: int) -> list[int]:
    """The rank at which each percentile 1..99 starts."""
    return [-(-k * rows // 100) for k in range(1, 100)]


@dataclass(frozen=True)
class RankThresholds:
    rows: int
    # (rank key, profile_id) at each rank of threshold_ranks(rows); None where the rank is past the last row
    keys: tuple[tuple[float, str] | None, ...]
    duplicate_ids: int = 0  # rows whose profile_id another row already has (the ranks then are not unique)
    key: str = PROPENSITY  # the column ranked: the propensity, or a value goal's predicted_value

    def percentiles(self, frame: pl.DataFrame) -> np.ndarray:
        """0-99 for each row of ``frame`` (columns ``key`` and profile_id)."""
        p, ids = pl.col(self.key), pl.col(ID)
        at_or_above = [((p > t) | ((p == t) & (ids >= i))).cast(pl.Int64) for t, i in filter(None, self.keys)]
        if not at_or_above:
            return np.zeros(frame.height, dtype=np.int64)
        return frame.select(pl.sum_horizontal(at_or_above)).to_series().to_numpy().astype(np.int64)

    def to_json(self) -> dict:
        return {"rows": self.rows, "keys": [list(k) if k else None for k in self.keys],
                "duplicate_ids": self.duplicate_ids, "key": self.key}

    @staticmethod
    def from_json(data: dict) -> "RankThresholds":
        return RankThresholds(data["rows"], tuple(tuple(k) if k else None for k in data["keys"]),
                              data.get("duplicate_ids", 0), data.get("key", PROPENSITY))


def keys_at_ranks(ordered: list[tuple[int, float, str]], rows: int, duplicate_ids: int = 0, key: str = PROPENSITY
                  ) -> RankThresholds:
    """From (rank, rank key, profile_id) rows found at threshold_ranks(rows)."""
    found = {rank: (float(p), str(i)) for rank, p, i in ordered}
    return RankThresholds(rows, tuple(found.get(r) for r in threshold_ranks(rows)), duplicate_ids, key)


def rank_key(frame: pl.DataFrame | pl.Schema) -> str:
    """What a score frame ranks by: a value goal's predicted_value when it has one, else the propensity."""
    return PREDICTED_VALUE if PREDICTED_VALUE in (frame.columns if isinstance(frame, pl.DataFrame) else frame) \
        else PROPENSITY


def thresholds_in_memory(frame: pl.DataFrame) -> RankThresholds:
    key = rank_key(frame)
    ordered = frame.select(key, ID).sort([key, ID])
    ranks = [r for r in threshold_ranks(ordered.height) if r < ordered.height]
    picked = ordered[ranks] if ranks else ordered.head(0)
    return keys_at_ranks(list(zip(ranks, picked[key], picked[ID], strict=True)), ordered.height,
                         ordered.height - ordered[ID].n_unique(), key)


def thresholds_duckdb(files: list[Path], *, memory_limit: str = "256MB", temp_dir: Path | None = None,
                      key: str = PROPENSITY) -> RankThresholds:
    """Pass one over Parquet files of (``key``, profile_id, ...): DuckDB sorts out of core within
    ``memory_limit``, spilling to ``temp_dir``."""
    config = {"memory_limit": memory_limit, "threads": 2, "preserve_insertion_order": False}
    if temp_dir is not None:
        config["temp_directory"] = str(temp_dir)
    with duckdb.connect(config=config) as con:
        source = f"read_parquet({[str(f) for f in files]!r})"
        rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT {ID}) FROM {source}").fetchone()
        ranks = [r for r in threshold_ranks(rows) if r < rows]
        ordered = con.execute(
            f"SELECT rn, {key}, {ID} FROM (SELECT {key}, {ID}, row_number() OVER "
            f"(ORDER BY {key}, {ID}) - 1 AS rn FROM {source}) WHERE rn IN (SELECT unnest(?::BIGINT[])) "
            "ORDER BY rn", [ranks]).fetchall()
    return keys_at_ranks(ordered, rows, rows - distinct, key)
