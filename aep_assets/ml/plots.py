"""Evaluation plots as PNG, embedded in Dagster markdown metadata as data URIs."""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: render to memory
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def markdown_image(title: str, png_b64: str) -> str:
    return f"![{title}](data:image/png;base64,{png_b64})"


def roc_plot(y: np.ndarray, p: np.ndarray, oracle: np.ndarray | None = None) -> str:
    fig, ax = plt.subplots(figsize=(4, 4))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label="model")
    if oracle is not None:
        fpr, tpr, _ = roc_curve(y, oracle)
        ax.plot(fpr, tpr, label="oracle", linestyle="--")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, temporal holdout")
    ax.legend(loc="lower right")
    return _png(fig)


def gains_plot(table: pl.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, *table["cumulative_reach"]], [0, *table["cumulative_gain"]], marker="o", label="model")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, label="random")
    ax.set(xlabel="share of profiles targeted", ylabel="share of conversions reached", title="Cumulative gains")
    ax.legend(loc="lower right")
    return _png(fig)


def reliability_plot(table: pl.DataFrame) -> str:
    fig, ax = plt.subplots(figsize=(4, 4))
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max()))
    ax.plot([0, top], [0, top], color="grey", linewidth=0.5)
    ax.scatter(table["mean_predicted"], table["observed_rate"], s=20 + 400 * table["share"].to_numpy())
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title="Reliability")
    return _png(fig)


def histogram_plot(y: np.ndarray, p: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(4, 4))
    bins = np.linspace(0, float(np.quantile(p, 0.999)) or 1.0, 40)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, density=True, label="did not convert")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, density=True, label="converted")
    ax.set(xlabel="calibrated propensity", ylabel="density", title="Scores by label")
    ax.legend()
    return _png(fig)
