"""Who a campaign changes: an uplift model learnt from randomised control groups, and how far to trust it.

The rows are the members of past audiences whose outcome window has closed: activated (treated) or held out
(control) by a hash that never saw them, so within the audiences treatment is randomised and a difference in
outcome between the two groups is the campaign's effect. The learner is an X-learner (Kunzel et al., 2019)
on LightGBM: it suits the unbalanced groups a holdout makes (a fifth held out leaves four treated profiles
for each control one), because each group's effects are imputed from the other group's outcome model and the
larger group's estimate gets the larger weight. ``docs/model.md`` says why not a two-model or a
transformed-outcome learner.

It is judged on profiles it did not see: the uplift curve (incremental goals per profile when the top
fraction by predicted uplift is treated and the rest is not), its Qini coefficient (the area between that
curve and random targeting's straight line), and the uplift in the top 10, 20 and 30 %, each with a
bootstrap or Wald interval. A model whose Qini coefficient is not above zero with confidence does not beat
random targeting, and steers nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .holdout import Uplift, measure_uplift, two_sided_z

if TYPE_CHECKING:
    import lightgbm as lgb

OUTCOME_PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 200,
                  "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 5.0,
                  "verbose": -1, "num_threads": 2, "force_col_wise": True, "deterministic": True}
EFFECT_PARAMS = {**OUTCOME_PARAMS, "objective": "regression", "min_data_in_leaf": 400, "learning_rate": 0.03}
MAX_ROUNDS, PATIENCE, VALID_SHARE = 1000, 30, 0.2
TOPS = (0.1, 0.2, 0.3)  # the top fractions whose uplift the evaluation reports
SIZING_TOP = 0.3  # the sizing asks that the uplift in this top fraction be measurable


def fit_booster(params: dict, x: np.ndarray, y: np.ndarray, seed: int, names: list[str]) -> lgb.Booster:
    """Early-stopped on a random fifth of the rows."""
    import lightgbm as lgb
    rng = np.random.default_rng(seed)
    valid = rng.random(len(y)) < VALID_SHARE
    fit_set = lgb.Dataset(x[~valid], y[~valid], feature_name=names, free_raw_data=True)
    valid_set = lgb.Dataset(x[valid], y[valid], reference=fit_set)
    return lgb.train({**params, "seed": seed}, fit_set, num_boost_round=MAX_ROUNDS, valid_sets=[valid_set],
                     callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])


@dataclass(frozen=True)
class XLearner:
    """tau(x) = g * tau0(x) + (1 - g) * tau1(x), where tau1 is fitted on the treated rows' y - mu0(x), tau0 on
    the control rows' mu1(x) - y, and g is the share of rows treated (the randomisation's own probability)."""

    mu0: lgb.Booster  # P(goal | x, control)
    mu1: lgb.Booster  # P(goal | x, treated)
    tau0: lgb.Booster
    tau1: lgb.Booster
    treated_share: float
    features: tuple[str, ...]

    @staticmethod
    def fit(x: np.ndarray, treated: np.ndarray, y: np.ndarray, features: tuple[str, ...], *,
            seed: int = 7) -> XLearner:
        treated, y = treated.astype(bool), y.astype(float)
        for group, rows in (("treated", treated), ("control", ~treated)):
            goals = int(y[rows].sum())
            if goals < 10 or rows.sum() - goals < 10:
                raise ValueError(f"The {group} profiles have {goals} goals among {int(rows.sum())}; the uplift "
                                 "learner needs at least 10 with and 10 without in each group.")
        names = list(features)
        mu0 = fit_booster(OUTCOME_PARAMS, x[~treated], y[~treated], seed, names)
        mu1 = fit_booster(OUTCOME_PARAMS, x[treated], y[treated], seed + 1, names)
        imputed1 = y[treated] - mu0.predict(x[treated])
        imputed0 = mu1.predict(x[~treated]) - y[~treated]
        tau1 = fit_booster(EFFECT_PARAMS, x[treated], imputed1, seed + 2, names)
        tau0 = fit_booster(EFFECT_PARAMS, x[~treated], imputed0, seed + 3, names)
        return XLearner(mu0, mu1, tau0, tau1, float(treated.mean()), tuple(features))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The predicted uplift: the change in the goal's probability that treating each row causes."""
        g = self.treated_share
        return g * self.tau0.predict(x) + (1 - g) * self.tau1.predict(x)

    def to_json(self) -> dict:
        return {"treated_share": self.treated_share, "features": list(self.features),
                **{name: getattr(self, name).model_to_string() for name in ("mu0", "mu1", "tau0", "tau1")}}

    @staticmethod
    def from_json(data: dict) -> XLearner:
        import lightgbm as lgb
        boosters = {name: lgb.Booster(model_str=data[name]) for name in ("mu0", "mu1", "tau0", "tau1")}
        return XLearner(**boosters, treated_share=float(data["treated_share"]), features=tuple(data["features"]))

    def dumps(self) -> bytes:
        return json.dumps(self.to_json()).encode()


@dataclass(frozen=True)
class UpliftCurve:
    """Incremental goals per profile when the top ``fraction`` by score is treated and the rest is not."""

    fraction: np.ndarray
    gain: np.ndarray

    @property
    def qini(self) -> float:
        """The area between the curve and random targeting's line from (0, 0) to (1, gain at 1)."""
        above = self.gain - self.fraction * self.gain[-1]
        return float(np.sum((above[1:] + above[:-1]) * np.diff(self.fraction)) / 2)


class Ranked:
    """Rows in the order a score ranks them, with their tie blocks: the curve is taken at each block's end and is
    linear inside a block, as the expected curve over the orders of the tied rows is."""

    def __init__(self, score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> None:
        order = np.argsort(-score, kind="stable")
        s = score[order]
        self.treated, self.y = treated[order].astype(bool), y[order].astype(float)
        self.ends = np.append(np.nonzero(s[1:] != s[:-1])[0], len(s) - 1)  # last row of each block of ties

    def blocks(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The curve at each tie block's end: (share of profiles targeted, incremental goals per profile)."""
        w = np.ones(len(self.y)) if weights is None else weights
        wt, wc = w * self.treated, w * ~self.treated
        n_t, n_c = np.cumsum(wt)[self.ends], np.cumsum(wc)[self.ends]
        y_t, y_c = np.cumsum(wt * self.y)[self.ends], np.cumsum(wc * self.y)[self.ends]
        lift = y_t / np.maximum(n_t, 1e-12) - y_c / np.maximum(n_c, 1e-12)  # a group not reached yet counts 0
        total = n_t[-1] + n_c[-1]
        return np.concatenate([[0.0], (n_t + n_c) / total]), np.concatenate([[0.0], lift * (n_t + n_c) / total])

    def curve(self, weights: np.ndarray | None = None, points: int = 101) -> UpliftCurve:
        at, gain = self.blocks(weights)
        grid = np.linspace(0, 1, points)
        return UpliftCurve(grid, np.interp(grid, at, gain))

    def top(self, fraction: float) -> Uplift | None:
        k = max(1, int(round(fraction * len(self.y))))
        t, y = self.treated[:k], self.y[:k]
        if t.sum() < 1 or (~t).sum() < 1:
            return None
        return measure_uplift(int(t.sum()), int(y[t].sum()), int((~t).sum()), int(y[~t].sum()))


@dataclass(frozen=True)
class RankingEvaluation:
    """One ranking's uplift curve on the evaluation profiles, its Qini coefficient with a bootstrap interval,
    and the measured uplift of its top fractions."""

    curve: UpliftCurve
    qini: float
    qini_ci_low: float
    qini_ci_high: float
    top: dict[float, Uplift | None]

    @property
    def beats_random(self) -> bool:
        """Above random targeting with confidence: the interval of the Qini coefficient lies above zero."""
        return self.qini_ci_low > 0

    def summary(self) -> dict:
        return {"qini": self.qini, "qini_ci_low": self.qini_ci_low, "qini_ci_high": self.qini_ci_high,
                **{f"uplift_top{round(f * 100)}": (u.absolute if u else math.nan) for f, u in self.top.items()},
                **{f"uplift_top{round(f * 100)}_ci_low": (u.ci_low if u else math.nan) for f, u in self.top.items()},
                **{f"uplift_top{round(f * 100)}_ci_high": (u.ci_high if u else math.nan)
                   for f, u in self.top.items()}}


def evaluate_ranking(score: np.ndarray, treated: np.ndarray, y: np.ndarray, *, resamples: int = 200,
                     confidence: float = 0.95, seed: int = 11) -> RankingEvaluation:
    """The ranking ``score`` gives the evaluation rows, against their realised outcomes ``y``. The interval
    resamples the rows (Poisson weights, with the ranking held fixed): it is the evaluation's own noise."""
    ranked = Ranked(np.asarray(score, float), np.asarray(treated), np.asarray(y))
    curve = ranked.curve()
    rng = np.random.default_rng(seed)
    qinis = np.array([ranked.curve(rng.poisson(1.0, len(ranked.y)).astype(float)).qini for _ in range(resamples)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(qinis, [tail, 1 - tail]) if resamples else (math.nan, math.nan)
    return RankingEvaluation(curve, curve.qini, float(low), float(high), {f: ranked.top(f) for f in TOPS})


@dataclass(frozen=True)
class LearnerSizing:
    """Before training: what the evaluation profiles can measure, and how many control profiles the learner needs
    before its evaluation is trusted (the uplift in its top ``SIZING_TOP`` measurable down to ``target_uplift``)."""

    treated: int
    control: int
    goal_rate: float
    evaluation_share: float
    target_uplift: float
    detectable_uplift: float  # in the top SIZING_TOP of the evaluation profiles
    control_needed: int  # randomised control profiles in all (training and evaluation)

    @property
    def enough(self) -> bool:
        return self.control >= self.control_needed

    def to_json(self) -> dict:
        return {**self.__dict__, "enough": self.enough}


def size_learner(treated: int, control: int, goal_rate: float, *, evaluation_share: float, target_uplift: float,
                 power: float = 0.8, alpha: float = 0.05) -> LearnerSizing:
    """A two-proportion test on the top SIZING_TOP of the evaluation profiles, with the groups in the ratio they
    come in (normal approximation, as holdout.detectable_uplift)."""
    p = min(max(goal_rate, 1e-6), 1 - 1e-6)
    z = two_sided_z(alpha, power)
    ratio = treated / control if control else math.inf  # treated per control profile
    per_control = p * (1 - p) * (1 + 1 / ratio) if ratio > 0 else math.inf  # variance per control profile measured
    top_control = control * evaluation_share * SIZING_TOP
    detectable = z * math.sqrt(per_control / top_control) if top_control > 0 and ratio > 0 else math.inf
    needed = (math.ceil(z * z * per_control / (target_uplift ** 2 * evaluation_share * SIZING_TOP))
              if math.isfinite(per_control) else 10 ** 12)
    return LearnerSizing(treated, control, goal_rate, evaluation_share, target_uplift, detectable, needed)
