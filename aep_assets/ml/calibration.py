"""Calibration of raw model scores into probabilities, fitted on a held-out fold and stored as JSON."""

from dataclasses import dataclass

import numpy as np

METHODS = ("isotonic", "platt")


@dataclass(frozen=True)
class Calibrator:
    """``isotonic``: a monotone step function through ``x``/``y`` knots (linear between them, flat
    outside). ``platt``: a logistic curve on the raw score's log-odds, ``sigmoid(a * logit + b)``."""

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            return np.interp(raw, self.x, self.y)
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))

    def to_dict(self) -> dict:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibrator":
        return cls(d["method"], tuple(d.get("x", ())), tuple(d.get("y", ())), d.get("a", 1.0), d.get("b", 0.0))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str = "isotonic") -> Calibrator:
    # Imported here: scoring only applies calibrators, and its jobs start faster without scikit-learn.
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method not in METHODS:
        raise ValueError(f"calibration {method!r} is not one of {METHODS}.")
    raw, y = np.asarray(raw, dtype=float), np.asarray(y)
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)))
    lr = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
