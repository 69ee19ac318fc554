"""Did targeting by uplift beat targeting by propensity? Once a window closes on a run whose persuadable audience
was activated: the uplift that audience realised against its control group, next to the uplift realised by a
propensity audience of the same size (the run's top profiles by propensity) against its own.

Every member of either audience was activated or held out by the same randomisation, so each audience's uplift
is its treated members' goal rate less its control members'. The two audiences share members, so the interval
of their difference resamples the profiles of both at once.
"""

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..ml.feature_set import ID
from ..ml.holdout import Uplift, measure_uplift
from ..ml.plots import uplift_plot
from . import report
from .handoff import ActivationRun, UpliftScoreRun
from .outcomes import evaluated_runs
from .stage_context import StageContext
from .uplift import TREATED, randomised_outcomes
from .uplift_scoring import PERSUADABLE

RESAMPLES = 500


@dataclass(frozen=True)
class TargetingComparison:
    scored_at: str
    window_end: str
    audience_size: int
    persuadable: Uplift
    propensity: Uplift
    difference: float  # persuadable uplift - propensity uplift
    difference_ci_low: float
    difference_ci_high: float
    true_uplift_persuadable: float = math.nan  # the demo: the oracle's mean true uplift of each audience
    true_uplift_propensity: float = math.nan

    @property
    def answer(self) -> str:
        if self.difference_ci_low > 0:
            return "yes: targeting by uplift realised more uplift than targeting by propensity"
        if self.difference_ci_high < 0:
            return "no: targeting by propensity realised more uplift"
        return "not yet clear: the interval of the difference spans zero"


def _uplift(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame[TREATED].to_numpy(), frame["y"].to_numpy()


def propensity_audience(frame: pl.DataFrame, size: int) -> pl.DataFrame:
    """The run's top ``size`` profiles by propensity (ties by identity): what propensity targeting would pick."""
    return frame.sort(["propensity", ID], descending=[True, False]).head(size)


def _rate_gap(t: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    wt, wc = w * t, w * ~t
    return float((wt * y).sum() / max(wt.sum(), 1e-12) - (wc * y).sum() / max(wc.sum(), 1e-12))


def compare_run(frame: pl.DataFrame, size_of: int, seed: int = 5) -> tuple[Uplift, Uplift, float, float, float]:
    """``frame``: the run's randomised profiles with ``treated``, ``y`` (what the campaign wants), ``propensity``
    and ``persuadable``; the propensity audience is the top ``size_of`` by propensity."""
    persuadable = frame.filter(pl.col(PERSUADABLE))
    by_propensity = propensity_audience(frame, size_of)
    ups = []
    for audience in (persuadable, by_propensity):
        t, y = _uplift(audience)
        ups.append(measure_uplift(int(t.sum()), int(y[t].sum()), int((~t).sum()), int(y[~t].sum())))
    union = frame.filter(pl.col(PERSUADABLE) | pl.col(ID).is_in(by_propensity[ID].implode()))
    in_p = union[PERSUADABLE].to_numpy()
    in_q = union[ID].is_in(by_propensity[ID].implode()).to_numpy()
    t, y = _uplift(union)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(RESAMPLES):
        w = rng.poisson(1.0, union.height).astype(float)
        diffs.append(_rate_gap(t[in_p], y[in_p], w[in_p]) - _rate_gap(t[in_q], y[in_q], w[in_q]))
    low, high = np.quantile(diffs, [0.025, 0.975])
    return ups[0], ups[1], ups[0].absolute - ups[1].absolute, float(low), float(high)


@dataclass(frozen=True)
class TargetingReport:
    comparisons: list[TargetingComparison]

    def metadata(self) -> dict:
        if not self.comparisons:
            return {"runs_compared": 0, "status": "no window has closed yet on scores whose persuadable audience was "
                                                  "activated"}
        c = self.comparisons[-1]
        meta = {"runs_compared": len(self.comparisons), "scored_at": c.scored_at, "window_end": c.window_end,
                "answer": c.answer, "audience_size": c.audience_size, "difference": c.difference,
                "difference_ci_low": c.difference_ci_low, "difference_ci_high": c.difference_ci_high}
        for name, u in (("persuadable", c.persuadable), ("propensity", c.propensity)):
            meta.update({f"{name}_uplift": u.absolute, f"{name}_uplift_ci_low": u.ci_low,
                         f"{name}_uplift_ci_high": u.ci_high, f"{name}_treated": u.treated,
                         f"{name}_control": u.control, f"{name}_treated_rate": u.treated_rate,
                         f"{name}_control_rate": u.control_rate})
        if not math.isnan(c.true_uplift_persuadable):
            meta.update({"true_uplift_persuadable": c.true_uplift_persuadable,
                         "true_uplift_propensity": c.true_uplift_propensity})
        curve = [np.array([c.persuadable.absolute, c.propensity.absolute]),
                 np.array([c.persuadable.ci_low, c.propensity.ci_low]),
                 np.array([c.persuadable.ci_high, c.propensity.ci_high])]
        meta["comparison_plot"] = report.Image("Uplift by targeting", uplift_plot(
            ["by uplift (persuadable)", "by propensity"], *curve))
        return meta


def compare_targeting(stage: StageContext) -> TargetingReport:
    """Every evaluated run whose persuadable audience was activated, oldest first."""
    store, names = stage.store, stage.names
    found = []
    for outcome in evaluated_runs(store, names):
        scores_run = UpliftScoreRun.load_if_any(store, names.uplift_scores(outcome.scored_at))
        activation = ActivationRun.load_if_any(store, names.activation_run(outcome.scored_at))
        steered = store.exists(names.uplift_activation(outcome.scored_at))
        if scores_run is None or activation is None or not steered:
            continue
        frame = (randomised_outcomes(store, names, stage.spec, outcome, activation)
                 .join(store.read_parquet([scores_run.key]).select(ID, "uplift_band"), on=ID, how="left",
                       maintain_order="left")
                 .with_columns((pl.col("uplift_band") == PERSUADABLE).fill_null(False).alias(PERSUADABLE)))
        size = int(frame[PERSUADABLE].sum())
        persuadable, propensity, diff, low, high = compare_run(frame, size)
        truth = _true_uplift(stage, outcome.scored_at, frame, size)
        found.append(TargetingComparison(outcome.scored_at, outcome.window_end, size, persuadable, propensity, diff,
                                         low, high, *truth))
    return TargetingReport(found)


def _true_uplift(stage: StageContext, scored_at: str, frame: pl.DataFrame, size: int) -> tuple[float, float]:
    """The demo: each audience's mean true uplift, which the simulation kept at the activation."""
    key = stage.names.uplift_truth(scored_at)
    if not stage.spec.simulated or not stage.store.exists(key):
        return math.nan, math.nan
    truth = stage.store.read_parquet([key]).select(pl.col("userid").alias(ID), "true_uplift")
    joined = frame.join(truth, on=ID, how="left")
    top = propensity_audience(joined, size)
    return (float(joined.filter(pl.col(PERSUADABLE))["true_uplift"].mean()), float(top["true_uplift"].mean()))
