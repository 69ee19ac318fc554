"""Drift of scores and features against the rows the model was validated on.

The reference is the temporal holdout (split ``test``, the latest cutoff): the population whose metrics passed
the model's gates. Scoring at that cutoff shows no drift by construction; later scorings measure what changed.

PSI = sum over bins of (a - e) * ln(a / e), with e the reference share and a the scored share of a bin. Bins
are the reference's deciles (fewer when values repeat), plus one bin for NULL, which means "never happened" for
recency features. Common reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a shift large enough
to distrust the model's scores.

What blocks (``DriftPolicy.assess``), in a real org where the clock moves between the two cutoffs:

* the score's PSI: what the write-back would change;
* a broken feature the model uses: all NULL where the reference was not (a profile dataset replaced), one value
  where it had many (an event type or identity that stopped arriving), or many rows a whole validated range
  outside it (a unit that changed);
* a population that shrank below a share of the validated one (an identity that stopped matching).

The features' PSI weighted by the model's gain shares warns: in a real org counts move with seasons and growth,
and when that matters to the model, the score moves too. A column the model does not use never warns by itself.

A time-since feature (recency, tenure, days or years since a date) grows with the clock alone: it is compared
as it is and aged by the time between the two cutoffs, and the smaller PSI counts.
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import polars as pl

BINS = 10
FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite
SCORE = "score"  # the calibrated propensity, under this name in a reference
AGED = "@aged"  # counts of a time-since feature after taking the clock's shift off
ALL_NULL, REFERENCE_NULL_AT_MOST = 0.99, 0.9
ONE_VALUE, REFERENCE_SPREAD_AT_MOST = 0.999, 0.98
FAR_SHARE = 0.05  # rows far outside the validated range that make a feature look broken


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # inner bin edges: bin i holds edges[i-1] <= x < edges[i]
    shares: list[float]  # one per bin, then the NULL share last
    low: float | None = None  # the validated rows' smallest and largest value (None: all NULL, or an old reference)
    high: float | None = None

    @staticmethod
    def fit(values: np.ndarray) -> "Histogram":
        finite = values[~np.isnan(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])) if finite.size else np.array([])
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        return Histogram([float(e) for e in edges], [float(s) for s in _shares(values, edges)], low, high)

    def psi(self, values: np.ndarray) -> float:
        return self.psi_of_counts(self.counts(values))

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Rows per bin, NULL next, then the rows far outside the validated range (what chunks add up)."""
        counts = _counts(values, np.asarray(self.edges))
        return np.append(counts, _far(values, self.low, self.high))

    def psi_of_counts(self, counts: np.ndarray) -> float:
        counts = np.asarray(counts)[: len(self.shares)]
        expected = np.maximum(np.asarray(self.shares), FLOOR)
        actual = np.maximum(counts / max(counts.sum(), 1), FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def broken(self, counts: np.ndarray) -> str | None:
        """Why these counts look like a broken feed rather than a drift, or None."""
        counts = np.asarray(counts)
        binned, far = counts[: len(self.shares)], counts[len(self.shares):]
        total = max(int(binned.sum()), 1)
        null_now, null_then = binned[-1] / total, self.shares[-1]
        if null_now >= ALL_NULL and null_then <= REFERENCE_NULL_AT_MOST:
            return f"{null_now:.0%} NULL, against {null_then:.0%} in the validated rows"
        top_now, top_then = binned.max() / total, max(self.shares)
        if top_now >= ONE_VALUE and top_then <= REFERENCE_SPREAD_AT_MOST and len(self.shares) > 2:
            return f"{top_now:.1%} of rows in one bin, against at most {top_then:.0%} in the validated rows"
        if far.size and far.sum() / total >= FAR_SHARE:
            return (f"{far.sum() / total:.0%} of rows lie more than a whole validated range [{self.low:g}, "
                    f"{self.high:g}] outside it (a unit or scale that changed?)")
        return None


def _far(values: np.ndarray, low: float | None, high: float | None) -> int:
    """Rows more than the range's own width below ``low`` or above ``high`` (NaN compares false: not far)."""
    if low is None or high is None:
        return 0
    span = max(high - low, abs(high), abs(low), 1e-9)
    return int(np.count_nonzero((values > high + span) | (values < low - span)))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin (bin i: edges[i-1] <= x < edges[i]), then the NULL rows. A bin's index is the number of edges
    at or below the value, counted one edge at a time: with the few edges of a histogram, a comparison per edge
    costs a fifth of a binary search per row, and it needs no copy of the non-NULL values."""
    index = np.zeros(values.size, np.uint8 if edges.size < 255 else np.int64)
    for edge in edges:
        index += values >= edge  # NaN compares false: a NULL row lands in bin 0, and is taken out of it below
    nulls = int(np.count_nonzero(np.isnan(values)))
    counts = np.bincount(index, minlength=edges.size + 1)
    counts[0] -= nulls
    return np.append(counts, nulls)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return _counts(values, edges) / max(values.size, 1)


def _utc(t: datetime | str) -> datetime:
    t = datetime.fromisoformat(t) if isinstance(t, str) else t
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).to_numpy()


@dataclass(frozen=True)
class DriftReference:
    """The validated rows' histogram of the score and of every model feature, with what reading them needs."""

    histograms: dict[str, Histogram]
    importance: dict[str, float] = field(default_factory=dict)  # feature -> the model's gain share
    clock: dict[str, float] = field(default_factory=dict)  # time-since feature -> its units per day
    cutoff: str | None = None  # ISO: the validated rows' cutoff
    rows: int = 0  # validated rows
    shift_days: float = 0.0  # a scoring run's cutoff minus ``cutoff``, in days (``at``)

    @staticmethod
    def fit(frame: pl.DataFrame, features: tuple[str, ...], propensity: np.ndarray, *,
            importance: dict[str, float] | None = None, clock: dict[str, float] | None = None,
            cutoff: str | None = None) -> "DriftReference":
        hists = {name: Histogram.fit(_column(frame, name)) for name in features}
        return DriftReference({SCORE: Histogram.fit(np.asarray(propensity, float)), **hists},
                              dict(importance or {}), {k: v for k, v in (clock or {}).items() if k in hists},
                              cutoff, frame.height)

    def at(self, cutoff: datetime | str) -> "DriftReference":
        """The reference as a scoring at ``cutoff`` reads it: time-since features aged by the time in between."""
        if self.cutoff is None:
            return self
        return replace(self, shift_days=(_utc(cutoff) - _utc(self.cutoff)).total_seconds() / 86400)

    def to_json(self) -> dict:
        return {"histograms": {name: {"edges": h.edges, "shares": h.shares, "low": h.low, "high": h.high}
                               for name, h in self.histograms.items()},
                "importance": self.importance, "clock": self.clock, "cutoff": self.cutoff, "rows": self.rows,
                "shift_days": self.shift_days}

    @staticmethod
    def from_json(data: dict) -> "DriftReference":
        if "histograms" not in data:  # saved before the reference carried more than its histograms
            data = {"histograms": data}
        return DriftReference({name: Histogram(h["edges"], h["shares"], h.get("low"), h.get("high"))
                               for name, h in data["histograms"].items()},
                              data.get("importance", {}), data.get("clock", {}), data.get("cutoff"),
                              data.get("rows", 0), data.get("shift_days", 0.0))

    def psi(self, frame: pl.DataFrame, propensity: np.ndarray) -> dict[str, float]:
        """PSI of the score and of each feature the reference knows, largest first."""
        return self.psi_of_counts(self.counts(frame, propensity))

    def counts(self, frame: pl.DataFrame, propensity: np.ndarray, *, aged: bool = True) -> dict[str, np.ndarray]:
        """Rows per bin of the score and of each feature the reference knows (one chunk's share of a run), and of
        each time-since feature aged by the shift (unless ``aged`` is False)."""
        out = {SCORE: self.histograms[SCORE].counts(np.asarray(propensity, float))}
        for name, h in self.histograms.items():
            if name != SCORE and name in frame.columns:
                out[name] = h.counts(_column(frame, name))
        return {**out, **(self.aged_counts(frame) if aged else {})}

    def aged_counts(self, frame: pl.DataFrame) -> dict[str, np.ndarray]:
        """Rows per bin of each time-since feature aged by the shift: the only counts that depend on the cutoff."""
        return {name + AGED: self.histograms[name].counts(_column(frame, name) - self.shift_days * rate)
                for name, rate in self.clock.items() if name in self.histograms and name in frame.columns}

    def psi_of_counts(self, counts: dict[str, np.ndarray]) -> dict[str, float]:
        out = {}
        for name, c in counts.items():
            if name in self.histograms:
                psi = self.histograms[name].psi_of_counts(c)
                aged = counts.get(name + AGED)
                out[name] = psi if aged is None else min(psi, self.histograms[name].psi_of_counts(aged))
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def broken(self, counts: dict[str, np.ndarray]) -> dict[str, str]:
        """Features whose scored values look like a broken feed: name -> why."""
        out = {}
        for name, c in counts.items():
            if name in self.histograms and name != SCORE:
                h, aged = self.histograms[name], counts.get(name + AGED)
                why = h.broken(np.asarray(c))
                if why and (aged is None or h.broken(np.asarray(aged))):  # not a value the clock alone moved
                    out[name] = why
        return out

    def weighted_psi(self, psi: dict[str, float]) -> float:
        """The features' PSI weighted by the model's gain shares (an unweighted mean without them)."""
        features = {k: v for k, v in psi.items() if k != SCORE}
        if not features:
            return 0.0
        weights = {k: self.importance.get(k, 0.0) for k in features} if self.importance else dict.fromkeys(features,
                                                                                                            1.0)
        total = sum(weights.values())
        return sum(weights[k] * v for k, v in features.items()) / total if total > 0 else 0.0


@dataclass(frozen=True)
class DriftAssessment:
    """What the drift gate saw, and why it says what it says."""

    verdict: str  # ok | warn | block
    psi: dict[str, float]  # PSI per column, the score included, largest first
    score_psi: float
    weighted_psi: float
    broken: dict[str, str]  # feature -> why it looks broken
    rows: int  # scored profiles
    reference_rows: int  # validated profiles
    reasons: tuple[str, ...]  # one sentence per finding that made the verdict

    @property
    def population_ratio(self) -> float:
        return self.rows / self.reference_rows if self.reference_rows else float("nan")


@dataclass(frozen=True)
class DriftPolicy:
    warn: float = 0.1
    block: float = 0.25
    min_population_ratio: float = 0.5  # scored profiles below this share of the validated ones block

    def __post_init__(self) -> None:
        if not 0 < self.warn <= self.block:
            raise ValueError(f"gates.drift needs 0 < warn ({self.warn}) <= block ({self.block}); the usual "
                             "reading of PSI is warn at 0.1, block at 0.25.")

    def verdict(self, psi: dict[str, float]) -> str:
        worst = max(psi.values(), default=0.0)
        return "block" if worst > self.block else "warn" if worst > self.warn else "ok"

    def assess(self, reference: DriftReference, counts: dict[str, np.ndarray], rows: int) -> DriftAssessment:
        psi = reference.psi_of_counts(counts)
        score, weighted = psi.get(SCORE, 0.0), reference.weighted_psi(psi)
        used = {k: v for k, v in reference.broken(counts).items() if reference.importance.get(k, 1.0) > 0}
        unused = {k: v for k, v in reference.broken(counts).items() if k not in used}
        blocks, warns = [], []
        if score > self.block:
            blocks.append(f"the score's PSI is {score:.3f} (block above {self.block})")
        blocks += [f"feature {k} looks broken: {why}" for k, why in used.items()]
        if reference.rows and rows < self.min_population_ratio * reference.rows:
            blocks.append(f"{rows} profiles scored against {reference.rows} validated "
                          f"({rows / reference.rows:.0%}, block below {self.min_population_ratio:.0%})")
        if self.warn < score <= self.block:
            warns.append(f"the score's PSI is {score:.3f} (warn above {self.warn})")
        if weighted > self.warn:
            moved = [k for k, v in psi.items() if k != SCORE and v > self.warn and reference.importance.get(k, 1) > 0]
            held = f", while the score's PSI is {score:.3f}" if score <= self.warn else ""
            warns.append(f"the features the model relies on moved: PSI {weighted:.3f} weighted by importance (warn "
                         f"above {self.warn}; most: {', '.join(moved[:4])}){held}")
        warns += [f"feature {k} (unused by the model) looks broken: {why}" for k, why in unused.items()]
        verdict = "block" if blocks else "warn" if warns else "ok"
        return DriftAssessment(verdict, psi, score, weighted, {**used, **unused}, rows, reference.rows,
                               tuple(blocks or warns))
