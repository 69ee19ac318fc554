"""What a scoring run reports, accumulated chunk by chunk so no step holds every score: counts and
mean propensity per band, a histogram of the propensities per band, the top rows, the drift counts
of every feature and the score, and what would make the scores invalid."""

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from .drift import AGED, SCORE, DriftAssessment, DriftPolicy, DriftReference
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

    def add_drift(self, reference: DriftReference | None, features: pl.DataFrame, propensity: np.ndarray, *,
                  aged: bool = True) -> None:
        if reference is None:
            return
        for name, counts in reference.counts(features, propensity, aged=aged).items():
            self.drift_counts[name] = (np.asarray(self.drift_counts.get(name, 0)) + counts).tolist()

    def merge(self, other: "ScoreSummary") -> "ScoreSummary":
        out = self._combined(other, 1)
        out.duplicate_ids = self.duplicate_ids + other.duplicate_ids
        out.eligible_rows = max(self.eligible_rows, other.eligible_rows)
        out.ineligible_rows = self.ineligible_rows + other.ineligible_rows
        out.top = _highest(self.top + other.top)
        return out

    def minus(self, other: "ScoreSummary") -> "ScoreSummary":
        """This summary without ``other``'s rows, which are some of its own: the counts, sums and histograms. The
        top rows, the duplicates and a job's eligibility counts do not subtract, and are left at their defaults."""
        return self._combined(other, -1)

    def _combined(self, other: "ScoreSummary", sign: int) -> "ScoreSummary":
        out = ScoreSummary(self.rows + sign * other.rows, self.out_of_range + sign * other.out_of_range,
                           self.missing_reasons + sign * other.missing_reasons)
        for name in BANDS:
            out.band_rows[name] = self.band_rows.get(name, 0) + sign * other.band_rows.get(name, 0)
            out.band_propensity_sum[name] = (self.band_propensity_sum.get(name, 0.0)
                                             + sign * other.band_propensity_sum.get(name, 0.0))
            out.histogram[name] = (np.asarray(self.histogram.get(name, [0] * HISTOGRAM_BINS))
                                   + sign * np.asarray(other.histogram.get(name, [0] * HISTOGRAM_BINS))).tolist()
        for name in {*self.drift_counts, *other.drift_counts}:
            out.drift_counts[name] = (np.asarray(self.drift_counts.get(name, 0))
                                      + sign * np.asarray(other.drift_counts.get(name, 0))).tolist()
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


@dataclass(frozen=True)
class ScoredRows:
    scores: pl.DataFrame  # final scores: propensity, band and the preview columns
    features: pl.DataFrame  # the features behind them


def summary_of(rows: ScoredRows, reference: DriftReference | None, *, aged: bool = True) -> ScoreSummary:
    """The summary of scores held in memory, with the drift counts against ``reference`` (``aged``: with the
    time-since features' counts at its shift)."""
    summary = ScoreSummary()
    live = rows.scores.filter(pl.col("propensity").is_not_null())
    summary.add_scores(live)
    summary.add_drift(reference, rows.features, live["propensity"].to_numpy(), aged=aged)
    summary.duplicate_ids = rows.scores.height - rows.scores[ID].n_unique()
    return summary


def updated_summary(published: ScoreSummary, replaced: ScoredRows, added: ScoredRows, merged: ScoredRows,
                    reference: DriftReference | None, *, same_cutoff: bool) -> ScoreSummary:
    """The summary of ``merged``, the published scores with ``replaced`` rows taken out and ``added`` ones put in,
    counted over the changed rows rather than every score: ``published`` (its summary) less the replaced rows plus
    the added ones. Only the time-since features' aged counts depend on the cutoff; when the published summary was
    counted at another cutoff, those are counted again over every merged row. The top rows and the duplicates are
    always counted again: they do not subtract."""
    out = (published.minus(summary_of(replaced, reference, aged=same_cutoff))
           .merge(summary_of(added, reference, aged=same_cutoff)))
    if reference is not None and not same_cutoff:
        out.drift_counts = {name: counts for name, counts in out.drift_counts.items() if not name.endswith(AGED)}
        out.drift_counts.update({name: c.tolist() for name, c in reference.aged_counts(merged.features).items()})
    live = merged.scores.filter(pl.col("propensity").is_not_null())
    out.top = _top_rows(live.select(PREVIEW_COLUMNS), live["propensity"].to_numpy())
    out.duplicate_ids = merged.scores.height - merged.scores[ID].n_unique()
    out.eligible_rows, out.ineligible_rows = -1, 0
    return out


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
