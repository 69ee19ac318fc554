"""Train a calibrated LightGBM propensity model and measure it on a temporal holdout.

Rows of split ``train`` (cutoff T1) are divided by profile into fit, validation (early stopping and
the hyperparameter search) and a random test fold. Rows of split ``test`` (cutoff T2, label windows
disjoint from T1's) are divided by profile in two: one part calibrates the probabilities, the other is the
temporal holdout every headline metric comes from. Calibrating on the latest closed outcome window gives
the probabilities today's base rate: in a real org traffic grows and seasons come, so the rate of T1's
window is not the rate of the windows scored now.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from .calibration import Calibrator, fit_calibrator
from .feature_set import GOAL_VALUE, ID, LABEL, PREDICTED_VALUE, feature_matrix
from .metrics import evaluate
from .value import ValueModel, expected_value, train_value_model, value_metrics

if TYPE_CHECKING:
    import lightgbm as lgb

DEFAULT_PARAMS = {
    "objective": "binary", "learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 200,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 5.0, "verbose": -1,
}
# Two trials train side by side on one thread each, and a refit on every fit row trains on two threads. On two
# cores side by side is the faster way to spend them, and fixed thread counts keep the model the same on any
# machine: a thread count changes the order LightGBM sums in, and so the last bits of the model.
SEARCH_WORKERS, REFIT_THREADS = 2, 2
# One histogram layout, always: LightGBM then does not time both at the start and pick one by the clock. Row-wise,
# with the thread counts fixed above, sums each bin in one order. On the demo's million-profile rows the refit
# takes 12.4-13.4 s row-wise against 14.1-15.1 s column-wise (and 16.9 s with the clock's pick), with the same
# trees, byte for byte, and the search's trials are the same too.
HISTOGRAMS = {"force_row_wise": True}
RANKING_METRICS = ("roc_auc", "pr_auc", "top_decile_precision", "top_decile_lift")
SOURCES = [*sorted(Path(__file__).parent.glob("*.py")), Path(__file__).parents[1] / "pipeline" / "feature_sql.py",
           *sorted((Path(__file__).parents[2] / "sql").glob("*.sql"))]


def code_version() -> str:
    """A hash of the model and feature code: ``aep_assets/ml/*.py``, the SQL generator and ``sql/*.sql``."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 7
    trials: int = 8  # hyperparameter settings tried; the first is DEFAULT_PARAMS
    calibration: str = "isotonic"  # or "platt"
    valid_share: float = 0.15
    calibration_share: float = 0.5  # of the temporal holdout's profiles (split 'test'): they calibrate
    random_test_share: float = 0.15
    num_boost_round: int = 3000
    early_stopping_rounds: int = 50
    # Early stopping across trials: a trial stops once it cannot catch the best trial that finished before it.
    prune_trials: bool = True
    # Above this many fit rows, the trials train on a stratified sample of this size and only the winner
    # is refit on every row: the search's cost stops growing with the population, the model's data does not.
    search_rows: int = 100_000

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be at least 1, got {self.trials}.")
        held = self.valid_share + self.random_test_share
        if not 0 < held < 0.8:
            raise ValueError(f"valid_share + random_test_share = {held:.2f}; keep it in (0, 0.8) so the fit fold "
                             "keeps most rows.")
        if not 0.1 <= self.calibration_share <= 0.9:
            raise ValueError(f"calibration_share = {self.calibration_share}: keep it in [0.1, 0.9] so both the "
                             "calibration and the holdout keep rows.")


@dataclass
class TrainedModel:
    booster: lgb.Booster
    calibrator: Calibrator
    features: tuple[str, ...]
    version: str
    params: dict
    metrics: dict[str, float]  # temporal holdout, calibrated
    random_split_metrics: dict[str, float]
    trials: list[dict]
    rows: dict[str, int]
    holdout: pl.DataFrame  # userId, propensity (calibrated), label: the temporal holdout's predictions
    feature_importance: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    value: ValueModel | None = None  # a value goal's E[value | some] regressor (ml/value.py)
    value_metrics: dict[str, float] = field(default_factory=dict)  # on the temporal holdout
    # The calibrated propensity of every row of split 'test', in temporal_holdout()'s order: what the model was
    # validated on, which the drift reference describes (predicting a million rows again took 4 s).
    validated_propensity: np.ndarray | None = None

    def raw(self, frame: pl.DataFrame) -> np.ndarray:
        return self.booster.predict(feature_matrix(frame, self.features))

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return self.calibrator.apply(self.raw(frame))

    def to_text(self) -> str:
        return self.booster.model_to_string()

    def to_json(self) -> str:
        return json.dumps(self.booster.dump_model())

    def card(self) -> dict:
        return {"version": self.version, "features": list(self.features), "label": LABEL, "params": self.params,
                "trees": self.booster.current_iteration(),
                "calibration": self.calibrator.to_dict(), "metrics": self.metrics,
                "random_split_metrics": self.random_split_metrics, "trials": self.trials, "rows": self.rows,
                "feature_importance": self.feature_importance, "code_version": self.code_version,
                **({"value_metrics": self.value_metrics, "value_rows": self.value.rows, "value_scale": self.value.scale}
                   if self.value else {})}

    def add_value(self, frame: pl.DataFrame, *, seed: int) -> None:
        """For a value goal: fit the value regressor on the training rows, and forecast the temporal holdout's
        value (``predicted_value`` beside ``goal_value`` in ``holdout``)."""
        train, latest = frame.filter(pl.col("split") == "train"), frame.filter(pl.col("split") == "test")
        test = self.holdout.select(ID).join(latest, on=ID, how="left", maintain_order="left")  # in holdout order
        calibration = latest.join(self.holdout.select(ID), on=ID, how="anti")
        self.value = train_value_model(train, self.features, seed=seed).calibrated(calibration)
        predicted = expected_value(self.holdout["propensity"].to_numpy(), self.value.conditional(test))
        realised = test[GOAL_VALUE].cast(pl.Float64).fill_null(0.0).to_numpy()
        self.value_metrics = value_metrics(realised, predicted,
                                           float(train[GOAL_VALUE].cast(pl.Float64).fill_null(0.0).mean()))
        self.holdout = self.holdout.with_columns(pl.Series(PREDICTED_VALUE, predicted), pl.Series(GOAL_VALUE, realised))


def temporal_holdout(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of split 'test' (the latest closed outcome window), in a fixed order: by profile, then cutoff."""
    return frame.filter(pl.col("split") == "test").sort(ID, "cutoff")


def model_version(ordered: pl.DataFrame, params: dict, code: str) -> str:
    """A hash of the training data (its rows in profile and cutoff order), the parameters and the code version."""
    digest = hashlib.sha256()
    digest.update(ordered.hash_rows(seed=0).to_numpy().tobytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(code.encode())
    return digest.hexdigest()[:16]


def _sample_params(rng: np.random.Generator) -> dict:
    return {
        # From 0.03: slower rates add trees (and scoring and reason-code time) for no held-out gain here.
        "learning_rate": float(np.exp(rng.uniform(np.log(0.03), np.log(0.15)))),
        "num_leaves": int(rng.choice([7, 15, 31, 63])),
        "min_data_in_leaf": int(rng.choice([50, 100, 200, 400, 800])),
        "feature_fraction": float(rng.uniform(0.5, 1.0)),
        "lambda_l2": float(rng.uniform(0.0, 20.0)),
    }


def _labels(frame: pl.DataFrame) -> np.ndarray:
    return frame[LABEL].cast(pl.Int32).to_numpy()


def _require_both_classes(y: np.ndarray, what: str) -> None:
    if y.sum() < 10 or (y == 0).sum() < 10:
        raise ValueError(f"The {what} rows have {int(y.sum())} positives and {int((y == 0).sum())} negatives; at "
                         "least 10 of each are needed. Simulate more profiles, move the cutoffs or widen the horizon.")


def _split(y: np.ndarray, cfg: TrainingConfig) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(y))
    folds = {}
    rest = idx
    for name, share in (("random_test", cfg.random_test_share), ("valid", cfg.valid_share)):
        rest, folds[name] = train_test_split(rest, test_size=share * len(y) / len(rest), stratify=y[rest],
                                             random_state=cfg.seed)
    folds["fit"] = rest
    return folds


def _calibration_split(y_test: np.ndarray, cfg: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, holdout) row indices of the temporal holdout, stratified by the label."""
    from sklearn.model_selection import train_test_split
    holdout, calibration = train_test_split(np.arange(len(y_test)), test_size=cfg.calibration_share,
                                            stratify=y_test, random_state=cfg.seed)
    return np.sort(calibration), np.sort(holdout)


def _search_rows(fit: np.ndarray, y: np.ndarray, cfg: TrainingConfig) -> np.ndarray:
    """The fit rows the trials train on: all of them, or a stratified sample of ``search_rows``."""
    from sklearn.model_selection import train_test_split
    if len(fit) <= cfg.search_rows:
        return fit
    sample, _ = train_test_split(fit, train_size=cfg.search_rows, stratify=y[fit], random_state=cfg.seed)
    return np.sort(sample)


class _Rows:
    """Fit and validation rows as LightGBM Datasets, sliced once and binned once per binning. A Dataset keeps the
    bins of the first parameters it trains with, min_data_in_leaf among them (it drops unsplittable features), so
    trials that share min_data_in_leaf share their Datasets and the others get their own: the same bins either way."""

    def __init__(self, x: np.ndarray, y: np.ndarray, fit: np.ndarray, valid: np.ndarray,
                 features: tuple[str, ...]) -> None:
        self.fit, self.valid, self.features = (x[fit], y[fit]), (x[valid], y[valid]), list(features)
        self.binned: dict[int, tuple[lgb.Dataset, lgb.Dataset]] = {}

    def datasets(self, params: dict) -> tuple[lgb.Dataset, lgb.Dataset]:
        import lightgbm as lgb
        key = params["min_data_in_leaf"]
        if key not in self.binned:
            fit_set = lgb.Dataset(*self.fit, feature_name=self.features, free_raw_data=False)
            self.binned[key] = fit_set, lgb.Dataset(*self.valid, reference=fit_set, free_raw_data=False)
        return self.binned[key]


class _StopBehindBest:
    """Stops a trial that cannot catch ``target``, the best finished trial's validation loss: not even if it kept
    up the pace of its last ``window`` rounds for another ``patience`` rounds. Boosting improves ever more slowly,
    so that straight line is optimistic, and a trial that would have won is seldom stopped. With no target it only
    counts the rounds."""

    order = 31  # LightGBM runs callbacks by order: this one after early_stopping's (30)

    def __init__(self, target: float | None, patience: int, window: int = 20) -> None:
        self.target, self.patience, self.window = target, patience, window
        self.lowest: list[float] = []  # the lowest validation loss after each round
        self.best_round, self.best_result = 0, None
        self.stopped = False

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        loss = env.evaluation_result_list[0][2]  # one validation set, one metric
        if not self.lowest or loss < self.lowest[-1]:
            self.best_round, self.best_result = env.iteration, env.evaluation_result_list
        self.lowest.append(min(loss, self.lowest[-1]) if self.lowest else loss)
        if self.target is None or len(self.lowest) <= self.window or self.lowest[-1] <= self.target:
            return
        pace = (self.lowest[-1 - self.window] - self.lowest[-1]) / self.window
        if self.lowest[-1] - pace * self.patience > self.target:
            import lightgbm as lgb  # here, not above: LightGBM calls this every round

            self.stopped = True
            raise lgb.EarlyStopException(self.best_round, self.best_result)


@dataclass(frozen=True)
class _Trial:
    number: int
    params: dict
    booster: lgb.Booster  # up to its best iteration
    rounds: int  # trained, the rounds after the best one included
    pruned: bool  # stopped behind the best trial before it: it cannot win

    @property
    def loss(self) -> float:
        return float(self.booster.best_score["valid_0"]["binary_logloss"])

    def record(self) -> dict:
        return {"trial": self.number, "valid_log_loss": self.loss, "best_iteration": self.booster.best_iteration,
                "rounds": self.rounds, "pruned": self.pruned,
                **{k: self.params[k] for k in ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction",
                                               "lambda_l2")}}


def _fit(params: dict, rows: _Rows, cfg: TrainingConfig, threads: int, *callbacks: _StopBehindBest) -> lgb.Booster:
    """Early-stopped on the validation fold."""
    import lightgbm as lgb
    fit_set, valid_set = rows.datasets(params)
    return lgb.train({**params, **HISTOGRAMS, "num_threads": threads}, fit_set, num_boost_round=cfg.num_boost_round,
                     valid_sets=[valid_set],
                     callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False), *callbacks])


def _search(rows: list[_Rows], cfg: TrainingConfig) -> list[_Trial]:
    """The hyperparameter trials in batches of ``len(rows)``, side by side, each worker with its own Datasets. A
    trial is pruned against the best trial of the earlier batches, never against its neighbour, so the search
    ends the same whichever of the two finishes first."""
    rng = np.random.default_rng(cfg.seed)
    settings = [{**DEFAULT_PARAMS, **({} if n == 0 else _sample_params(rng)), "seed": cfg.seed}
                for n in range(cfg.trials)]

    def run(n: int, target: float | None) -> _Trial:
        watch = _StopBehindBest(target if cfg.prune_trials else None, cfg.early_stopping_rounds)
        booster = _fit(settings[n], rows[n % len(rows)], cfg, 1, watch)
        return _Trial(n, settings[n], booster, rounds=len(watch.lowest), pruned=watch.stopped)

    trials: list[_Trial] = []
    with ThreadPoolExecutor(len(rows)) as pool:
        for first in range(0, cfg.trials, len(rows)):
            target = min((t.loss for t in trials if not t.pruned), default=None)
            batch = range(first, min(first + len(rows), cfg.trials))
            trials += pool.map(lambda n, target=target: run(n, target), batch)
    return trials


def train_model(frame: pl.DataFrame, features: tuple[str, ...], config: TrainingConfig | None = None) -> TrainedModel:
    """Train on ``split == 'train'`` rows, evaluate on ``split == 'test'`` rows (the temporal holdout)."""
    import lightgbm as lgb
    cfg = config or TrainingConfig()
    for col in (LABEL, "split", ID):
        if col not in frame.columns:
            raise ValueError(f"The training frame has no {col!r} column; it must come from sql/feature_table.sql.")
    features = tuple(features)
    # Exports come in no fixed order; the folds and the version must not depend on it. One sort serves both: at a
    # million profiles sorting the training rows, the holdout and the whole frame apart took 1.4 s of the main thread.
    ordered = frame.sort(ID, "cutoff")
    train, test = (ordered.filter(pl.col("split") == split) for split in ("train", "test"))
    y, y_test = _labels(train), _labels(test)
    _require_both_classes(y, "training (split 'train')")
    _require_both_classes(y_test, "temporal holdout (split 'test')")
    x, x_test = feature_matrix(train, features), feature_matrix(test, features)
    folds = _split(y, cfg)
    search = _search_rows(folds["fit"], y, cfg)
    workers = [_Rows(x, y, search, folds["valid"], features) for _ in range(min(SEARCH_WORKERS, cfg.trials))]
    trials = _search(workers, cfg)
    best = min((t for t in trials if not t.pruned), key=lambda t: t.loss)
    booster, params = best.booster, best.params
    if len(search) < len(folds["fit"]):
        booster = _fit(params, _Rows(x, y, folds["fit"], folds["valid"], features), cfg, REFIT_THREADS)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    calibration, held = _calibration_split(y_test, cfg)
    raw_test = booster.predict(x_test)
    calibrator = fit_calibrator(raw_test[calibration], y_test[calibration], cfg.calibration)
    # Ranking needs no calibration: ROC AUC, PR AUC and lift come from the raw scores of every T2 row, so halving
    # the holdout for calibration does not double their noise (at 2,000 profiles it moved AUC across the floor).
    ranking = {k: v for k, v in evaluate(y_test, raw_test).items() if k in RANKING_METRICS}
    p_test, y_test = calibrator.apply(raw_test[held]), y_test[held]
    p_random = calibrator.apply(booster.predict(x[folds["random_test"]]))
    gain = booster.feature_importance(importance_type="gain")
    total = gain.sum() or 1.0
    code = code_version()
    return TrainedModel(
        booster=booster, calibrator=calibrator, features=features,
        version=model_version(ordered, {**params, "calibration": cfg.calibration}, code), params=params,
        metrics={**evaluate(y_test, p_test), **ranking},
        random_split_metrics=evaluate(y[folds["random_test"]], p_random),
        trials=[t.record() for t in trials], rows={**{k: len(v) for k, v in folds.items()}, "search": len(search),
                                                   "calibration": len(calibration), "temporal_test": len(held)},
        holdout=pl.DataFrame({ID: test[ID].gather(held), "propensity": p_test, LABEL: y_test}),
        feature_importance={f: float(g / total) for f, g in zip(features, gain, strict=True)}, code_version=code,
        validated_propensity=calibrator.apply(raw_test))


def load_model(text: str, card: dict) -> tuple[lgb.Booster, Calibrator, tuple[str, ...]]:
    import lightgbm as lgb
    return (lgb.Booster(model_str=text), Calibrator.from_dict(card["calibration"]), tuple(card["features"]))
