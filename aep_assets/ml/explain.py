"""Reason codes: the features that pushed each profile's score up most, from LightGBM's pred_contrib."""

import lightgbm as lgb
import numpy as np

REASONS = 3
CHUNK_ROWS = 200_000  # pred_contrib returns a dense (rows x features) matrix; keep it small


def reason_codes(booster: lgb.Booster, x: np.ndarray, features: tuple[str, ...],
                 top: int = REASONS) -> list[np.ndarray]:
    """``top`` arrays of feature names: per row, the features with the largest contributions to the
    raw score (SHAP values in log-odds), largest first."""
    names = np.asarray(features, dtype=object)
    picks = [np.empty(len(x), dtype=object) for _ in range(top)]
    for lo in range(0, len(x), CHUNK_ROWS):
        contrib = booster.predict(x[lo:lo + CHUNK_ROWS], pred_contrib=True)[:, :-1]  # last column: the bias
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
        for k in range(top):
            picks[k][lo:lo + CHUNK_ROWS] = names[order[:, k]]
    return picks
