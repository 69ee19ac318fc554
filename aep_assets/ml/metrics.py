"""Evaluation metrics of a binary propensity model."""

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score


def _check(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=float)
    if y_true.shape != y_prob.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_prob must be 1-D of the same length, got {y_true.shape} and {y_prob.shape}.")
    if len(np.unique(y_true)) < 2:
        raise ValueError("y_true holds a single class; the metrics need both positives and negatives.")
    return y_true, y_prob


def evaluate(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, and the base rate.

    >>> evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))["roc_auc"]
    0.75
    """
    y_true, y_prob = _check(y_true, y_prob)
    return {
        "roc_auc": float(roc_auc_score(y_true, y_prob)),
        "pr_auc": float(average_precision_score(y_true, y_prob)),
        "log_loss": float(log_loss(y_true, np.clip(y_prob, 1e-15, 1 - 1e-15))),
        "positive_rate": float(y_true.mean()),
    }
