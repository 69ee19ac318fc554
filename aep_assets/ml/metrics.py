"""Evaluation metrics of a binary propensity model: ranking, calibration, and gains by decile."""

import numpy as np
import polars as pl

ECE_BINS = 10


def _check(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=float)
    if y_true.shape != y_prob.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_prob must be 1-D of the same length, got {y_true.shape} and {y_prob.shape}.")
    if len(np.unique(y_true)) < 2:
        raise ValueError("y_true holds a single class; the metrics need both positives and negatives.")
    return y_true, y_prob


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-width probability bins: sum over bins of |mean predicted - observed rate| * share.

    >>> expected_calibration_error(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))
    0.0
    """
    table = reliability(y_true, y_prob, bins)
    gap = np.abs(table["mean_predicted"].to_numpy() - table["observed_rate"].to_numpy())
    return float(np.dot(gap, table["share"].to_numpy()))


def reliability(y_true: np.ndarray, y_prob: np.ndarray, bins: int = ECE_BINS) -> pl.DataFrame:
    """Per non-empty equal-width bin: rows, share, mean prediction and observed rate."""
    y_prob = np.asarray(y_prob, dtype=float)
    idx = np.minimum((y_prob * bins).astype(int), bins - 1)
    rows = np.bincount(idx, minlength=bins)
    used = rows > 0
    return pl.DataFrame({
        "bin": np.arange(bins)[used], "rows": rows[used],
        "mean_predicted": np.bincount(idx, weights=y_prob, minlength=bins)[used] / rows[used],
        "observed_rate": np.bincount(idx, weights=np.asarray(y_true, dtype=float), minlength=bins)[used] / rows[used],
        "share": rows[used] / len(idx)})


def gains(y_true: np.ndarray, y_prob: np.ndarray, groups: int = 10) -> pl.DataFrame:
    """Lift and cumulative gains by decile (decile 1 = highest scores)."""
    y_true, y_prob = _check(y_true, y_prob)
    order = np.argsort(-y_prob, kind="stable")
    decile = np.empty(len(order), dtype=np.int64)
    decile[order] = np.arange(len(order)) * groups // len(order) + 1
    base = y_true.mean()
    table = (pl.DataFrame({"decile": decile, "y": y_true.astype(float), "p": y_prob})
             .group_by("decile").agg(pl.len().alias("rows"), pl.col("y").sum().alias("positives"),
                                     pl.col("y").mean().alias("conversion_rate"),
                                     pl.col("p").mean().alias("mean_predicted"))
             .sort("decile"))
    return table.with_columns(
        (pl.col("conversion_rate") / base).alias("lift"),
        (pl.col("positives").cum_sum() / y_true.sum()).alias("cumulative_gain"),
        (pl.col("rows").cum_sum() / len(y_true)).alias("cumulative_reach"),
        (pl.col("positives").cum_sum() / pl.col("rows").cum_sum()).alias("cumulative_precision"))


def evaluate(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, Brier score, ECE, top-decile precision, base rate.

    >>> evaluate(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))["roc_auc"]
    0.75
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
    y_true, y_prob = _check(y_true, y_prob)
    top = gains(y_true, y_prob).row(0, named=True)
    return {
        "roc_auc": float(roc_auc_score(y_true, y_prob)),
        "pr_auc": float(average_precision_score(y_true, y_prob)),
        "log_loss": float(log_loss(y_true, np.clip(y_prob, 1e-15, 1 - 1e-15))),
        "brier": float(brier_score_loss(y_true, y_prob)),
        "ece": expected_calibration_error(y_true, y_prob),
        "top_decile_precision": float(top["conversion_rate"]),
        "top_decile_lift": float(top["lift"]),
        "positive_rate": float(y_true.mean()),
        "rows": float(len(y_true)),
    }
