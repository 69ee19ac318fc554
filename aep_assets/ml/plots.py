"""Evaluation plots as PNG, embedded in Dagster markdown metadata as data URIs."""

import base64
import io
from functools import cache

import numpy as np
import polars as pl


@cache
def _pyplot():
    """pyplot on a backend that renders to memory (no display), imported when the first plot is drawn: every
    process that loads the code location would otherwise wait for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def markdown_image(title: str, png_b64: str) -> str:
    return f"![{title}](data:image/png;base64,{png_b64})"


def roc_plot(y: np.ndarray, p: np.ndarray, oracle: np.ndarray | None = None) -> str:
    from sklearn.metrics import roc_curve

    fig, ax = _pyplot().subplots(figsize=(4, 4))
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
    fig, ax = _pyplot().subplots(figsize=(4, 4))
    ax.plot([0, *table["cumulative_reach"]], [0, *table["cumulative_gain"]], marker="o", label="model")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5, label="random")
    ax.set(xlabel="share of profiles targeted", ylabel="share of conversions reached", title="Cumulative gains")
    ax.legend(loc="lower right")
    return _png(fig)


def reliability_plot(table: pl.DataFrame) -> str:
    fig, ax = _pyplot().subplots(figsize=(4, 4))
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max()))
    ax.plot([0, top], [0, top], color="grey", linewidth=0.5)
    ax.scatter(table["mean_predicted"], table["observed_rate"], s=20 + 400 * table["share"].to_numpy())
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title="Reliability")
    return _png(fig)


def histogram_plot(y: np.ndarray, p: np.ndarray) -> str:
    fig, ax = _pyplot().subplots(figsize=(4, 4))
    bins = np.linspace(0, float(np.quantile(p, 0.999)) or 1.0, 40)
    ax.hist(p[y == 0], bins=bins, alpha=0.6, density=True, label="did not convert")
    ax.hist(p[y == 1], bins=bins, alpha=0.6, density=True, label="converted")
    ax.set(xlabel="calibrated propensity", ylabel="density", title="Scores by label")
    ax.legend()
    return _png(fig)


def _spread(mid: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    """Error bar lengths below and above ``mid``. A Wilson interval at a rate of 0 or 1 ends at the rate itself,
    give or take a rounding error that matplotlib would refuse as a negative length."""
    return [np.maximum(mid - low, 0), np.maximum(high - mid, 0)]


def outcome_plot(by_decile: pl.DataFrame) -> str:
    """Expected (with the interval the check allows) and realised conversion (with its Wilson interval) per
    decile, like Customer AI's performance summary."""
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    d = by_decile["decile"].to_numpy()
    exp, real = by_decile["expected_rate"].to_numpy(), by_decile["realised_rate"].to_numpy()
    ax.bar(d - 0.2, exp, width=0.4, label="expected", color="#9ecae1",
           yerr=_spread(exp, by_decile["expected_low"].to_numpy(), by_decile["expected_high"].to_numpy()), capsize=2)
    ax.bar(d + 0.2, real, width=0.4, label="realised", color="#3182bd",
           yerr=_spread(real, by_decile["realised_low"].to_numpy(), by_decile["realised_high"].to_numpy()), capsize=2)
    ax.set(xlabel="score decile (10 = highest)", ylabel="conversion rate in the outcome window",
           title="Expected vs realised", xticks=d)
    ax.legend(loc="upper left")
    return _png(fig)


def outcome_history_plot(history: pl.DataFrame) -> str:
    """ROC AUC and calibration in the large (realised - expected) of every evaluated scoring run."""
    fig, (top, bottom) = _pyplot().subplots(2, 1, figsize=(5, 4), sharex=True)
    runs = np.arange(history.height)
    top.plot(runs, history["roc_auc"], marker="o")
    top.set(ylabel="ROC AUC", title="Scoring runs once their window closed")
    bottom.axhline(0, color="grey", linewidth=0.5)
    bottom.plot(runs, history["calibration_in_the_large"], marker="o", color="#e6550d")
    bottom.set(ylabel="realised - expected", xlabel="scoring run (oldest first)")
    if len(runs) <= 20:
        bottom.set_xticks(runs)
    return _png(fig)


def uplift_plot(bands: list[str], absolute: np.ndarray, low: np.ndarray, high: np.ndarray) -> str:
    """Each audience's measured uplift with its confidence interval."""
    fig, ax = _pyplot().subplots(figsize=(5, 3))
    y = np.arange(len(bands))
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.errorbar(absolute, y, xerr=_spread(absolute, low, high), fmt="o", capsize=3)
    ax.set(yticks=y, yticklabels=bands, xlabel="treated - control conversion rate", title="Audience uplift")
    return _png(fig)


def score_distribution_plot(histogram: dict[str, list[int]]) -> str:
    """Histogram of the propensities, one colour per band, from counts over equal bins of [0, 1] (a run's
    ScoreSummary), cut where 99.9 % of the profiles are."""
    counts = {band: np.asarray(histogram.get(band, [])) for band in ("low", "medium", "high")}
    total = sum((c for c in counts.values() if c.size), np.zeros(1))
    fig, ax = _pyplot().subplots(figsize=(5, 3.5))
    if total.sum():
        bins = total.size
        last = int(np.searchsorted(np.cumsum(total) / total.sum(), 0.999)) + 1
        edges = np.linspace(0, last / bins, last + 1)
        for band, c in counts.items():
            if c.size and c.sum():
                ax.stairs(c[:last], edges, fill=True, alpha=0.7, label=f"{band} ({int(c.sum()):,})")
        ax.legend()
    ax.set(xlabel="calibrated propensity", ylabel="profiles", title="Scores by band")
    return _png(fig)


def funnel_plot(report: pl.DataFrame) -> str:
    """Profiles reaching each event type (the funnel), and the goal rate among them."""
    r = report.sort("profiles")
    fig, ax = _pyplot().subplots(figsize=(6, 0.35 * r.height + 1.2))
    y = np.arange(r.height)
    ax.barh(y, r["profiles"], color="#9ecae1")
    ax.set(yticks=y, yticklabels=r["eventType"], xlabel="profiles with the event", title="Funnel")
    rate = ax.twiny()
    rate.plot(r["conversion_rate_with_event"], y, "o", color="#e6550d")
    rate.set_xlabel("goal rate among them", color="#e6550d")
    return _png(fig)


def goal_correlation_plot(report: pl.DataFrame) -> str:
    """Correlation of each event type's per-profile count with reaching the goal."""
    r = report.fill_nan(None).drop_nulls("corr_count_with_conversion").sort("corr_count_with_conversion")
    fig, ax = _pyplot().subplots(figsize=(6, 0.35 * r.height + 1.2))
    y = np.arange(r.height)
    ax.barh(y, r["corr_count_with_conversion"], color=np.where(r["corr_count_with_conversion"] > 0, "#31a354",
                                                                   "#de2d26"))
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set(yticks=y, yticklabels=r["eventType"], xlabel="correlation of the count with the goal",
           title="Event types and the goal")
    return _png(fig)


def volume_plot(daily: pl.DataFrame, top: int = 8) -> str:
    """Events per day of the most frequent event types."""
    fig, ax = _pyplot().subplots(figsize=(7, 3.5))
    if daily.height:
        kinds = daily.group_by("eventType").agg(pl.col("events").sum()).sort("events", descending=True)["eventType"]
        for kind in kinds.head(top):
            d = daily.filter(pl.col("eventType") == kind).sort("day")
            ax.plot(d["day"].to_list(), d["events"], label=kind, linewidth=1)
        ax.legend(fontsize=6, ncol=2)
    ax.set(ylabel="events per day", title="Event volumes over time")
    fig.autofmt_xdate()
    return _png(fig)


def cooccurrence_plot(pairs: pl.DataFrame) -> str:
    """Share of profiles with event type a that also have event type b."""
    kinds = sorted(set(pairs["a"].to_list())) if pairs.height else []
    index = {k: i for i, k in enumerate(kinds)}
    counts = np.zeros((len(kinds), len(kinds)))
    for a, b, n in pairs.select("a", "b", "profiles").iter_rows():
        counts[index[a], index[b]] = n
    share = counts / np.maximum(np.diag(counts)[:, None], 1)
    fig, ax = _pyplot().subplots(figsize=(6.5, 5.5))
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    ax.set(xticks=range(len(kinds)), yticks=range(len(kinds)), title="Co-occurrence: P(b | a)")
    ax.set_xticklabels(kinds, rotation=90, fontsize=7)
    ax.set_yticklabels(kinds, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)


def audience_sizes_plot(history: list[dict]) -> str:
    """Each band audience's size at every evaluation, oldest first."""
    fig, ax = _pyplot().subplots(figsize=(5, 3))
    runs = np.arange(len(history))
    for band in ("high", "medium", "low"):
        ax.plot(runs, [h.get(band, 0) for h in history], marker="o", label=band)
    ax.set(xlabel="segment evaluation (oldest first)", ylabel="members", title="Audience sizes across runs")
    if len(runs) <= 20:
        ax.set_xticks(runs)
    ax.legend()
    return _png(fig)


def qini_plot(curves: dict) -> str:
    """Uplift curves (ml/uplift.UpliftCurve) of several rankings, with random targeting's line."""
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    for name, curve in curves.items():
        ax.plot(curve.fraction, curve.gain, label=f"{name} (Qini {curve.qini:.4f})")
    first = next(iter(curves.values()))
    ax.plot([0, 1], [0, first.gain[-1]], color="grey", linestyle="--", linewidth=0.8, label="random targeting")
    ax.set(xlabel="share of profiles targeted, by ranking", ylabel="incremental goals per profile",
           title="Uplift curves, evaluation profiles")
    ax.legend(loc="best", fontsize=7)
    return _png(fig)
