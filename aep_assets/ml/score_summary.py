"""What a scoring run reports, accumulated chunk by chunk so no step holds every score: counts and
mean propensity per band, a histogram of the propensities per band, the top rows, the drift counts
of every feature and the score, and what would make the scores invalid."""

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from .drift import SCORE, DriftAssessment, DriftPolicy, DriftReference
from .explain import REASON_COLUMNS
from .feature_set import ID
from .scoring import BANDS

HISTOGRAM_BINS = 200  # over [0, 1]
TOP_ROWS = 10
PREVIEW_COLUMNS = (ID, "propensity", "score", "percentile", "decile", "band", *REASON_COLUMNS)


@dataclass
class ScoreSummary:
    rows: int = 0
    out_of_range: int = 0  # propensities outside [0, 1], or NaN
    missing_reasons: int = 0
    duplicate_ids: int = 0
    eligible_rows: int = -1  # what the job's first pass scored (-1: not counted); the ranked rows must match
    ineligible_rows: int = 0  # covered profiles out of the population (converted before the cutoff)
    band_rows: dict[str, int] = field(default_factory=dict)
    band_propensity_sum: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list[int]] = field(default_factory=dict)  # band -> counts over HISTOGRAM_BINS
    top: list[dict] = field(default_factory=list)  # the TOP_ROWS highest ranks, PREVIEW_COLUMNS
    drift_counts: dict[str, list[int]] = field(default_factory=dict)  # column -> counts per reference bin

    def add_scores(self, scores: pl.DataFrame) -> None:
        """A chunk of final scores (with percentile and band)."""
        p = scores["propensity"].to_numpy().astype(float)
        self.rows += scores.height
        self.out_of_range += int(np.sum(~((p >= 0) & (p <= 1))))
        self.missing_reasons += sum(scores[name].null_count() for name in REASON_COLUMNS)
        bins = np.clip((p * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        band = scores["band"]  # compared in polars: as numpy it would be an array of Python strings
        for name in BANDS:
            mask = (band == name).fill_null(False).to_numpy()
            self.band_rows[name] = self.band_rows.get(name, 0) + int(mask.sum())
            self.band_propensity_sum[name] = self.band_propensity_sum.get(name, 0.0) + float(p[mask].sum())
            counts = np.bincount(bins[mask], minlength=HISTOGRAM_BINS)
            self.histogram[name] = (np.asarray(self.histogram.get(name, [0] * HISTOGRAM_BINS)) + counts).tolist()
        head = _top_rows(scores.select(PREVIEW_COLUMNS), p)
        self.top = _highest(self.top + head)

    def add_drift(self, reference: DriftReference | None, features: pl.DataFrame, propensity: np.ndarray) -> None:
        if reference is None:
            return
        for name, counts in reference.counts(features, propensity).items():
            self.drift_counts[name] = (np.asarray(self.drift_counts.get(name, 0)) + counts).tolist()

    def merge(self, other: "ScoreSummary") -> "ScoreSummary":
        out = ScoreSummary(self.rows + other.rows, self.out_of_range + other.out_of_range,
                           self.missing_reasons + other.missing_reasons, self.duplicate_ids + other.duplicate_ids,
                           max(self.eligible_rows, other.eligible_rows), self.ineligible_rows + other.ineligible_rows)
        for name in BANDS:
            out.band_rows[name] = self.band_rows.get(name, 0) + other.band_rows.get(name, 0)
            out.band_propensity_sum[name] = (self.band_propensity_sum.get(name, 0.0)
                                             + other.band_propensity_sum.get(name, 0.0))
            out.histogram[name] = (np.asarray(self.histogram.get(name, [0] * HISTOGRAM_BINS))
                                   + np.asarray(other.histogram.get(name, [0] * HISTOGRAM_BINS))).tolist()
        out.top = _highest(self.top + other.top)
        for name in {*self.drift_counts, *other.drift_counts}:
            out.drift_counts[name] = (np.asarray(self.drift_counts.get(name, 0))
                                      + np.asarray(other.drift_counts.get(name, 0))).tolist()
        return out

    @property
    def valid(self) -> bool:
        """One score per profile (every scored one), propensities in [0, 1], three reason codes each."""
        counted = self.eligible_rows < 0 or self.eligible_rows == self.rows
        return counted and not (self.out_of_range or self.missing_reasons or self.duplicate_ids)

    @property
    def mean_propensity(self) -> float:
        return sum(self.band_propensity_sum.values()) / self.rows if self.rows else 0.0

    def bands_table(self) -> pl.DataFrame:
        return pl.DataFrame({
            "band": list(BANDS), "profiles": [self.band_rows.get(b, 0) for b in BANDS],
            "mean": [self.band_propensity_sum.get(b, 0.0) / self.band_rows[b] if self.band_rows.get(b) else None
                     for b in BANDS]}).filter(pl.col("profiles") > 0).sort("band")

    def preview(self) -> pl.DataFrame:
        return pl.DataFrame(self.top) if self.top else pl.DataFrame()

    def psi(self, reference: DriftReference | None) -> dict[str, float]:
        """PSI of the score and of each feature, largest first; empty without a reference."""
        if reference is None or SCORE not in self.drift_counts:
            return {}
        return reference.psi_of_counts({k: np.asarray(v) for k, v in self.drift_counts.items()})

    def assess(self, reference: DriftReference | None, policy: DriftPolicy) -> DriftAssessment | None:
        """The drift gate's finding on these scores; None without a reference."""
        if reference is None or SCORE not in self.drift_counts:
            return None
        return policy.assess(reference, {k: np.asarray(v) for k, v in self.drift_counts.items()}, self.rows)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "ScoreSummary":
        return ScoreSummary(**data)


def _top_rows(scores: pl.DataFrame, propensity: np.ndarray) -> list[dict]:
    """The TOP_ROWS highest (propensity, profile id), as dicts. Only rows at or above the TOP_ROWS-th highest
    propensity can be among them, so those alone are ranked (with their string ids), not the whole chunk."""
    if scores.height > TOP_ROWS and not np.isnan(propensity).any():  # polars ranks NaN highest: rank them all
        floor = np.partition(propensity, scores.height - TOP_ROWS)[scores.height - TOP_ROWS]
        scores = scores.filter(pl.col("propensity") >= floor)
    return scores.top_k(TOP_ROWS, by=["propensity", ID]).to_dicts()


def _highest(rows: list[dict]) -> list[dict]:
    """The top rows in the ranks' order, (propensity, profile_id) descending, so ties do not depend on chunks."""
    return sorted(rows, key=lambda r: (r["propensity"], r[ID]), reverse=True)[:TOP_ROWS]
