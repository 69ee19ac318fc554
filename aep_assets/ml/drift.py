"""Population stability index (PSI) of scores and features against the training set.

PSI = sum over bins of (a - e) * ln(a / e), with e the training share and a the scored share of a
bin. Bins are the training set's deciles (fewer when values repeat), plus one bin for NULL, which
means "never happened" for recency features. Common reading: below 0.1 stable, 0.1-0.25 moderate
shift, above 0.25 a shift large enough to distrust the model's scores.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl

BINS = 10
FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite
SCORE = "score"  # the calibrated propensity, under this name in a reference


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # inner bin edges: bin i holds edges[i-1] <= x < edges[i]
    shares: list[float]  # one per bin, then the NULL share last

    @staticmethod
    def fit(values: np.ndarray) -> "Histogram":
        finite = values[~np.isnan(values)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])) if finite.size else np.array([])
        return Histogram([float(e) for e in edges], [float(s) for s in _shares(values, edges)])

    def psi(self, values: np.ndarray) -> float:
        return self.psi_of_counts(self.counts(values))

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Rows per bin, NULL last: what chunks add up before ``psi_of_counts``."""
        return _counts(values, np.asarray(self.edges))

    def psi_of_counts(self, counts: np.ndarray) -> float:
        expected = np.maximum(np.asarray(self.shares), FLOOR)
        actual = np.maximum(counts / max(counts.sum(), 1), FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    null = np.isnan(values)
    counts = np.bincount(np.searchsorted(edges, values[~null], side="right"), minlength=edges.size + 1)
    return np.append(counts, null.sum())


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return _counts(values, edges) / max(values.size, 1)


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).to_numpy()


@dataclass(frozen=True)
class DriftReference:
    """The training set's histogram of the score and of every model feature."""

    histograms: dict[str, Histogram]

    @staticmethod
    def fit(frame: pl.DataFrame, features: tuple[str, ...], propensity: np.ndarray) -> "DriftReference":
        hists = {name: Histogram.fit(_column(frame, name)) for name in features}
        return DriftReference({SCORE: Histogram.fit(np.asarray(propensity, float)), **hists})

    def to_json(self) -> dict:
        return {name: {"edges": h.edges, "shares": h.shares} for name, h in self.histograms.items()}

    @staticmethod
    def from_json(data: dict) -> "DriftReference":
        return DriftReference({name: Histogram(h["edges"], h["shares"]) for name, h in data.items()})

    def psi(self, frame: pl.DataFrame, propensity: np.ndarray) -> dict[str, float]:
        """PSI of the score and of each feature the reference knows, largest first."""
        return self.psi_of_counts(self.counts(frame, propensity))

    def counts(self, frame: pl.DataFrame, propensity: np.ndarray) -> dict[str, np.ndarray]:
        """Rows per bin of the score and of each feature the reference knows (one chunk's share of a run)."""
        out = {SCORE: self.histograms[SCORE].counts(np.asarray(propensity, float))}
        out.update({name: h.counts(_column(frame, name)) for name, h in self.histograms.items()
                    if name != SCORE and name in frame.columns})
        return out

    def psi_of_counts(self, counts: dict[str, np.ndarray]) -> dict[str, float]:
        out = {name: self.histograms[name].psi_of_counts(c) for name, c in counts.items() if name in self.histograms}
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class DriftPolicy:
    warn: float = 0.1
    block: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.warn <= self.block:
            raise ValueError(f"Drift thresholds need 0 < warn ({self.warn}) <= block ({self.block}); the usual "
                             "reading of PSI is warn at 0.1, block at 0.25.")

    def verdict(self, psi: dict[str, float]) -> str:
        worst = max(psi.values(), default=0.0)
        return "block" if worst > self.block else "warn" if worst > self.warn else "ok"
