"""The uplift stages of a model: learn who the campaign changes from the control groups of closed windows, score
the published run with it, and, once a window closes on those scores, compare targeting by uplift with
targeting by propensity.

Rows: every profile of an evaluated scoring run whose audiences were activated with a control group, treated
(in an activated audience's file) or control (held out), with the features it was scored on and whether it
reached the goal in the window (for a churn model: whether it stayed, the outcome a campaign wants).
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from ..ml.feature_set import ID
from ..ml.holdout import CONTROL, TREATMENT, unit_hashes
from ..ml.plots import qini_plot
from ..ml.uplift import LearnerSizing, RankingEvaluation, XLearner, evaluate_ranking, size_learner
from ..storage import Storage
from . import report
from .handoff import ActivationRun, ScoreRun, UpliftActivation, UpliftModelRun
from .naming import Names
from .outcomes import RunOutcome, evaluated_runs
from .spec import ModelSpec
from .stage_context import StageContext

EVALUATION_SALT = "uplift evaluation"
TREATED = "treated"


def treated_members(store: Storage, names: Names, activation: ActivationRun) -> pl.Series:
    """Everyone a run's audiences activated: its band audiences' members, and its persuadable audience's."""
    persuadable = UpliftActivation.load_if_any(store, names.uplift_activation(activation.scored_at))
    return pl.concat([*(activation.members(store, a) for a in activation.files),
                      *([persuadable.identities(store)] if persuadable else [])]).unique()


def randomised_outcomes(store: Storage, names: Names, spec: ModelSpec, outcome: RunOutcome,
                        activation: ActivationRun) -> pl.DataFrame:
    """An evaluated run's randomised profiles: ``propensity``, ``treated`` (activated) or control (held out), and
    ``y``, what the campaign wants: the goal reached (conversion, value) or, for churn, no churn."""
    members = treated_members(store, names, activation)
    wanted = ~pl.col("converted") if spec.goal.kind == "churn" else pl.col("converted")
    return (store.read_parquet([outcome.outcomes_key])
            .with_columns(pl.col(ID).is_in(members.implode()).alias(TREATED))
            .filter((pl.col("group") == CONTROL) | ((pl.col("group") == TREATMENT) & pl.col(TREATED)))
            .select(ID, "propensity", TREATED, wanted.cast(pl.Int8).alias("y")))


def uplift_rows(stage: StageContext) -> tuple[pl.DataFrame, tuple[str, ...], list[str]]:
    """Per randomised profile of every evaluated, activated run: its features, ``treated`` and ``y``; with the
    feature names the runs share and the runs' scored_at."""
    store, names, spec = stage.store, stage.names, stage.spec
    frames, runs = [], []
    for outcome in evaluated_runs(store, names):
        activation = ActivationRun.load_if_any(store, names.activation_run(outcome.scored_at))
        if activation is None or activation.holdout_share <= 0:
            continue
        run = ScoreRun.load(store, names.score_run(outcome.scored_at), asset=f"{names.model}/aep_score_dataset")
        randomised = randomised_outcomes(store, names, spec, outcome, activation)
        frames.append(randomised.with_columns(pl.lit(outcome.scored_at).alias("run"))
                      .join(store.read_parquet([run.features_key]), on=ID, how="inner"))
        runs.append(outcome.scored_at)
    if not frames:
        return pl.DataFrame(), (), []
    shared = set.intersection(*(set(f.columns) for f in frames)) - {ID, TREATED, "y", "propensity", "run"}
    features = tuple(c for c in frames[-1].columns if c in shared and frames[-1][c].dtype.is_numeric())
    # Joins come in no fixed order; the learner's folds and the rankings' ties must not depend on it.
    rows = pl.concat([f.select(ID, TREATED, "y", "propensity", "run", *features) for f in frames]).sort("run", ID)
    return rows, features, runs


def evaluation_rows(identities: pl.Series, share: float, salt: str) -> np.ndarray:
    """A stable random part of the profiles, by a hash of the identity: a profile in several windows stays on one
    side."""
    return unit_hashes(identities, salt) < share


@dataclass(frozen=True)
class UpliftTraining:
    run: UpliftModelRun
    model: RankingEvaluation | None
    propensity: RankingEvaluation | None
    oracle: RankingEvaluation | None  # the demo: the true uplift's ranking of the same profiles

    def metadata(self) -> dict:
        r = self.run
        meta = {"status": r.status, "gated": r.gated, "windows_learnt_from": len(r.runs),
                **{f"sizing_{k}": v for k, v in r.sizing.items()}, **{f"rows_{k}": v for k, v in r.rows.items()}}
        if self.model is None:
            return meta
        curves = {"uplift model": self.model.curve, "propensity": self.propensity.curve,
                  **({"oracle (true uplift)": self.oracle.curve} if self.oracle else {})}
        return {**meta, "model_version": r.version, "model_key": r.model_key,
                **{f"model_{k}": v for k, v in r.evaluation.items()},
                **{f"propensity_{k}": v for k, v in r.propensity_evaluation.items()},
                **({f"oracle_{k}": v for k, v in self.oracle.summary().items()} if self.oracle else {}),
                "qini_plot": report.Image("Uplift curves", qini_plot(curves))}

    def checks(self) -> list[report.Check]:
        run = self.run
        if not run.model_key:
            return [report.Check("beats_random", True, {"status": f"nothing to judge: {run.status}"})]
        e = run.evaluation
        return [report.Check(
            "beats_random", run.gated, {"qini": e["qini"], "qini_ci_low": e["qini_ci_low"],
                                        "qini_ci_high": e["qini_ci_high"]},
            why=f"the Qini coefficient's interval [{e['qini_ci_low']:.4f}, {e['qini_ci_high']:.4f}] does not lie "
                "above zero: the model does not beat random targeting with confidence",
            fix="nothing to do: the uplift model steers no audience until one does; more closed windows or a larger "
                "holdout.share give it more to learn from", severity="warn")]


def train_uplift(stage: StageContext) -> UpliftTraining:
    """Size the randomised profiles first; with enough, train the X-learner on a hashed part of them and judge it
    on the rest against random targeting (the gate) and against the propensity as an uplift ranking."""
    store, spec, names = stage.store, stage.spec, stage.names
    rows, features, runs = uplift_rows(stage)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if rows.is_empty():
        run = UpliftModelRun("", now, "no window of an activation with control groups has closed yet", "", [], {},
                             {}, {}, {})
        run.save(store, names.uplift_model)
        return UpliftTraining(run, None, None, None)
    treated = rows[TREATED].to_numpy()
    sizing = size_learner(int(treated.sum()), int((~treated).sum()), float(rows["y"].mean()),
                          evaluation_share=spec.uplift.evaluation_share, target_uplift=spec.holdout.target_uplift,
                          power=spec.holdout.power, alpha=spec.holdout.alpha)
    held = evaluation_rows(rows[ID], spec.uplift.evaluation_share, f"{names.model}/{EVALUATION_SALT}")
    counts = {"train_treated": int((treated & ~held).sum()), "train_control": int((~treated & ~held).sum()),
              "evaluation_treated": int((treated & held).sum()), "evaluation_control": int((~treated & held).sum())}
    if not sizing.enough:
        run = UpliftModelRun("", now, _too_few(sizing), "", runs, sizing.to_json(), counts, {}, {})
        run.save(store, names.uplift_model)
        return UpliftTraining(run, None, None, None)
    x = rows.select([pl.col(c).cast(pl.Float64) for c in features]).to_numpy()
    y = rows["y"].to_numpy()
    learner = XLearner.fit(x[~held], treated[~held], y[~held], features)
    evaluation = rows.filter(pl.Series(held))
    judge = {"resamples": spec.uplift.resamples, "confidence": spec.uplift.confidence}
    model = evaluate_ranking(learner.predict(x[held]), treated[held], y[held], **judge)
    propensity = evaluate_ranking(evaluation["propensity"].to_numpy(), treated[held], y[held], **judge)
    oracle = _oracle_ranking(stage, evaluation, treated[held], y[held], judge)
    model_bytes = learner.dumps()
    version = hashlib.sha256(("|".join(runs) + f"|{rows.height}|").encode() + model_bytes).hexdigest()[:12]
    store.write_bytes(names.uplift_model_file(version), model_bytes)
    gated = model.beats_random
    status = ("beats random targeting: its persuadable audiences are built" if gated else
              "does not beat random targeting with confidence: it steers no audience")
    run = UpliftModelRun(version, now, status, names.uplift_model_file(version), runs, sizing.to_json(), counts,
                         model.summary(), propensity.summary(), gated)
    run.save(store, names.uplift_model)
    return UpliftTraining(run, model, propensity, oracle)


def _too_few(sizing: LearnerSizing) -> str:
    return (f"too few randomised profiles to trust an uplift model: {sizing.control} control profiles, and "
            f"{sizing.control_needed} are needed for the uplift in the top 30 % of the evaluation part to be "
            f"measurable down to holdout.target_uplift = {sizing.target_uplift} (it can measure "
            f"{sizing.detectable_uplift:.4f}); let more windows close, or raise holdout.share")


def _oracle_ranking(stage: StageContext, evaluation: pl.DataFrame, treated: np.ndarray, y: np.ndarray,
                    judge: dict) -> RankingEvaluation | None:
    """The demo only: the profiles ranked by their true uplift, which the simulation kept per activation."""
    store, names = stage.store, stage.names
    truths = [store.read_parquet([names.uplift_truth(r)]).select(pl.col("userid").alias(ID), "true_uplift",
                                                                  pl.lit(r).alias("run"))
              for r in evaluation["run"].unique().to_list() if store.exists(names.uplift_truth(r))]
    if not stage.spec.simulated or not truths:
        return None
    truth = evaluation.select(ID, "run").join(pl.concat(truths), on=[ID, "run"], how="left",
                                                maintain_order="left")["true_uplift"]
    if truth.null_count() or truth.is_nan().any():
        return None
    return evaluate_ranking(truth.to_numpy(), treated, y, **judge)
