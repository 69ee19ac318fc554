"""Looking back at scoring runs once their outcome window has closed: did the scores come true, and did
the audiences cause conversions?

Every scoring run is kept (``scores/runs/``; published runs for a model that writes back, every run for a
dry run). A run's outcome window is ``(cutoff, cutoff + goal.outcome_days]``, where the cutoff is the time
its features were computed as of: now for an org's data, the simulated present for the demo. Once the
present passes the window's end, one Query Service CTAS (``sql/score_outcomes.sql``) finds the goal events
in the windows of every run due, the result is exported to storage and joined with each run's scores.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from ..aep import AEPClient
from ..ml.feature_set import GOAL_VALUE, ID, PREDICTED_VALUE, FeatureSet
from ..ml.holdout import CONTROL, Uplift, detectable_uplift, measure_uplift
from ..ml.outcomes import OutcomeComparison, compare_outcomes
from ..ml.plots import outcome_history_plot, outcome_plot, uplift_plot
from ..ml.value import value_metrics
from ..storage import Storage
from . import report
from .audiences import BANDS
from .exports import export_dataset
from .feature_builds import FeatureBuild, feature_params, goal_fragments, transient_feature_dataset
from .handoff import ActivationRun, Handoff, ScoreRun
from .naming import Names
from .scoring_stages import present
from .sources import resolve_sources
from .spec import Holdout, ModelSpec
from .stage_context import StageContext

EVERYONE, CONTROLS = "every scored profile", "the control groups"


def untouched(store: Storage, names: Names, run: ScoreRun, frame: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """The profiles whose outcome only the scores speak for. Once audiences were activated, a campaign moves
    its members' outcomes (that is its purpose), so with control groups the forecast is judged on them: a
    random sample of every band that nothing was sent to."""
    activation = ActivationRun.load_if_any(store, names.activation_run(run.scored_at))
    if activation is not None and activation.holdout_share > 0 and "group" in frame.columns:
        return frame.filter(pl.col("group") == CONTROL), CONTROLS
    return frame, EVERYONE


@dataclass(frozen=True)
class RunOutcome(Handoff):
    """What one scoring run's window showed, kept in ``outcomes/<run>.json``."""

    scored_at: str
    cutoff: str
    window_end: str
    model_version: str
    outcomes_key: str  # Parquet: the run's scores with ``converted``
    profiles: int
    conversions: int
    expected_rate: float
    realised_rate: float
    calibration_in_the_large: float
    roc_auc: float
    pr_auc: float
    outside: list[str]  # deciles and bands whose realised rate left its expected interval
    by_decile: list[dict]
    by_band: list[dict]
    judged_on: str = EVERYONE  # or CONTROLS: the profiles no activation touched
    value: dict = field(default_factory=dict)  # a value goal: predicted against realised value (ml/value.py)

    @property
    def calibrated(self) -> bool:
        return not self.outside


def window_end(run: ScoreRun, spec: ModelSpec) -> datetime:
    return datetime.fromisoformat(run.cutoff) + timedelta(days=spec.goal.outcome_days)


def scoring_runs(store: Storage, names: Names) -> list[ScoreRun]:
    """Every kept scoring run, oldest first."""
    keys = sorted(k for k in store.list_keys(names.score_runs) if k.endswith(".json"))
    return [ScoreRun.load(store, k, asset=f"{names.model}/propensity_scores") for k in keys]


def evaluated_runs(store: Storage, names: Names) -> list[RunOutcome]:
    keys = sorted(k for k in store.list_keys(names.outcomes) if k.endswith(".json"))
    return [RunOutcome.load(store, k, asset=f"{names.model}/score_outcomes") for k in keys]


@dataclass(frozen=True)
class Due:
    present: datetime
    due: list[ScoreRun]  # window closed, not evaluated yet
    waiting: list[ScoreRun]  # window still open
    next_close: datetime | None  # when the first waiting window closes


def runs_due(store: Storage, spec: ModelSpec, names: Names, now: datetime | None = None) -> Due:
    now = now or present(store, spec)
    done = {o.scored_at for o in evaluated_runs(store, names)}
    runs = [r for r in scoring_runs(store, names) if r.scored_at not in done]
    waiting = [r for r in runs if window_end(r, spec) > now]
    return Due(now, [r for r in runs if window_end(r, spec) <= now], waiting,
               min((window_end(r, spec) for r in waiting), default=None))


def realised_goals(client: AEPClient, store: Storage, spec: ModelSpec, names: Names,
                   cutoffs: dict[str, datetime]) -> tuple[pl.DataFrame, FeatureBuild]:
    """Per (profile, run label): the number of goal events in the run's window, from Query Service."""
    sources = resolve_sources(client, spec, names)
    fs = FeatureSet(identity=spec.events.identity, goal=spec.goal.condition, events=(), goal_kind=spec.goal.kind,
                    goal_value=spec.goal.value)
    with transient_feature_dataset(
            client, name="score_outcomes", owner=names.model, table_prefix=names.table_prefix("score_outcomes"),
            params=feature_params(client, sources, cutoffs, spec.goal.outcome_days),
            fragments=goal_fragments(fs, sources), input_dataset_ids=sources.event_dataset_ids) as build:
        export = export_dataset(client, store, build.dataset["id"], flow_name=names.flow("outcomes export"),
                                path=names.export_path("outcomes"))
        goals = (store.read_parquet(export.keys) if export.keys
                 else pl.DataFrame(schema={ID: pl.Utf8, "split": pl.Utf8, "goals": pl.Int64,
                                           **({GOAL_VALUE: pl.Float64} if spec.goal.value else {})}))
    value = [pl.col(GOAL_VALUE).cast(pl.Float64)] if spec.goal.value else []
    return goals.select(pl.col(ID).cast(pl.Utf8), "split", "goals", *value), build


@dataclass(frozen=True)
class OutcomeReport:
    due: Due
    evaluated: list[tuple[RunOutcome, OutcomeComparison]]  # the runs this materialisation looked back at
    history: list[RunOutcome]  # every run evaluated so far, oldest first
    build: FeatureBuild | None = None
    uri: str = ""  # the latest evaluated run's outcomes

    @property
    def warned(self) -> list[tuple[str, list[str]]]:
        """(scored_at, where the realised rate left its interval) of each run that did."""
        return [(o.scored_at, o.outside) for o, _ in self.evaluated if o.outside]

    def metadata(self) -> dict:
        due = self.due
        meta = {"present": due.present.isoformat(), "evaluated_runs": len(self.evaluated),
                "runs_waiting": len(due.waiting), "runs_evaluated_so_far": len(self.history),
                **({"next_window_closes": due.next_close.isoformat()} if due.next_close is not None else {})}
        if not self.evaluated:
            return meta
        outcome, comparison = self.evaluated[-1]
        history = pl.DataFrame([{k: getattr(o, k) for k in ("scored_at", "cutoff", "profiles", "expected_rate",
                                                              "realised_rate", "calibration_in_the_large",
                                                              "roc_auc", "pr_auc")} for o in self.history])
        value = outcome.value
        return {
            **meta, "scored_at": outcome.scored_at, "cutoff": outcome.cutoff, "window_end": outcome.window_end,
            "model_version": outcome.model_version, "dagster/row_count": outcome.profiles,
            "judged_on": outcome.judged_on, "conversions": outcome.conversions,
            "expected_rate": outcome.expected_rate, "realised_rate": outcome.realised_rate,
            "calibration_in_the_large": outcome.calibration_in_the_large, "roc_auc": outcome.roc_auc,
            "pr_auc": outcome.pr_auc, "dagster/uri": self.uri,
            "by_decile": report.Table(_rates(comparison.by_decile), rows=10),
            "by_band": report.Table(_rates(comparison.by_band), rows=3),
            "expected_vs_realised": report.Image("Expected vs realised", outcome_plot(comparison.by_decile)),
            "runs": report.Table(history.with_columns(pl.col(pl.Float64).round(4)), rows=20),
            **({f"value_{k}": float(v) for k, v in value.items() if k != "by_band"} if value else {}),
            **({"value_by_band": report.Table(pl.DataFrame(value["by_band"]).with_columns(
                pl.col(pl.Float64).round(2)))} if value else {}),
            "across_runs": report.Image("Across runs", outcome_history_plot(history)),
        }

    def checks(self) -> list[report.Check]:
        if not self.evaluated:
            return [report.Check("realised_within_expected", True,
                                 {"status": "nothing to check: no outcome window has closed yet"})]
        outcome, comparison = self.evaluated[-1]
        warned = self.warned
        return [report.Check(
            "realised_within_expected", not warned, {
                "runs_checked": len(self.evaluated), "z": comparison.z, "outside": report.Json(dict(warned)),
                "calibration_in_the_large": outcome.calibration_in_the_large},
            why="; ".join(f"run {s}: realised conversion left its expected interval in {', '.join(o)}"
                          for s, o in warned),
            fix="a few deciles outside now and then is chance (the interval is 1 - outcomes.alpha); outside run "
                "after run, the model's calibration has moved: retrain it",
            severity="warn")]


def _rates(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(frame.columns[0]), "profiles", "conversions",
                        *[pl.col(c).round(4) for c in ("expected_rate", "expected_low", "expected_high",
                                                        "realised_rate", "realised_low", "realised_high")], "inside")


def evaluate_outcomes(stage: StageContext) -> OutcomeReport:
    """Compare every due run's scores with what happened in its window, and keep the result per run."""
    client, store, spec, names = stage.client, stage.store, stage.spec, stage.names
    due = runs_due(store, spec, names)
    if not due.due:
        return OutcomeReport(due, [], evaluated_runs(store, names))
    labels = {f"run{k}": r for k, r in enumerate(due.due)}
    goals, build = realised_goals(client, store, spec, names,
                                  {label: datetime.fromisoformat(r.cutoff) for label, r in labels.items()})
    evaluated = []
    for label, run in labels.items():
        hits = goals.filter((pl.col("split") == label) & (pl.col("goals") > 0)).select(ID).unique()
        scores = store.read_parquet([run.key])
        reached = pl.col(ID).is_in(hits[ID].implode())
        # "converted": what the score forecast happened; for a churn model, that no goal event did.
        frame = scores.with_columns((~reached if spec.goal.kind == "churn" else reached).alias("converted"))
        if spec.goal.value:  # what each profile's window realised, beside what its score forecast
            frame = frame.join(goals.filter(pl.col("split") == label).select(ID, pl.col(GOAL_VALUE).alias(
                "realised_value")), on=ID, how="left").with_columns(pl.col("realised_value").fill_null(0.0))
        judged, judged_on = untouched(store, names, run, frame)
        comparison = compare_outcomes(judged, alpha=spec.outcomes.alpha, calibration_rows=run.calibration_rows)
        stamp = names.run_stamp(run.scored_at)
        value_columns = [PREDICTED_VALUE, "realised_value"] if spec.goal.value else []
        store.write_parquet(f"{names.outcomes}/{stamp}.parquet", frame.select(
            ID, "propensity", "decile", "band", *(["group"] if "group" in frame.columns else []), "converted",
            *value_columns))
        outcome = RunOutcome(
            scored_at=run.scored_at, cutoff=run.cutoff, window_end=window_end(run, spec).isoformat(),
            model_version=run.model_version, outcomes_key=f"{names.outcomes}/{stamp}.parquet",
            profiles=comparison.profiles, conversions=comparison.conversions,
            expected_rate=comparison.expected_rate, realised_rate=comparison.realised_rate,
            calibration_in_the_large=comparison.calibration_in_the_large, roc_auc=comparison.roc_auc,
            pr_auc=comparison.pr_auc, outside=comparison.outside,
            by_decile=comparison.by_decile.to_dicts(), by_band=comparison.by_band.to_dicts(), judged_on=judged_on,
            value=compare_values(judged) if spec.goal.value else {})
        outcome.save(store, f"{names.outcomes}/{stamp}.json")
        evaluated.append((outcome, comparison))
    return OutcomeReport(due, evaluated, evaluated_runs(store, names), build, store.uri(evaluated[-1][0].outcomes_key))


def compare_values(frame: pl.DataFrame) -> dict:
    """A value goal's forecast against what the window realised: in total, ranked, and per band."""
    live = frame.filter(pl.col(PREDICTED_VALUE).is_not_null())
    metrics = value_metrics(live["realised_value"].to_numpy(), live[PREDICTED_VALUE].to_numpy(),
                            float(live["realised_value"].mean() or 0.0))
    bands = live.group_by("band").agg(pl.len().alias("profiles"), pl.col(PREDICTED_VALUE).sum().alias("expected"),
                                      pl.col("realised_value").sum().alias("realised")).sort("band")
    return {**{k: metrics[k] for k in ("predicted_total", "realised_total", "total_ratio", "spearman",
                                       "normalized_gini")}, "by_band": bands.to_dicts()}


@dataclass(frozen=True)
class AudienceUplift:
    scored_at: str
    window_end: str
    holdout_share: float
    bands: dict[str, Uplift]


@dataclass(frozen=True)
class UpliftReport:
    """Every activated run's uplift per audience, oldest first, and the model's holdout settings."""

    runs: list[AudienceUplift]
    holdout: Holdout

    def metadata(self) -> dict:
        h = self.holdout
        meta = {"runs_measured": len(self.runs), "holdout_share": h.share}
        if not self.runs:
            return {**meta, "status": "holdout.share is 0: every member is activated, so no control group "
                                      "measures the uplift" if h.share <= 0
                    else "no activated run's outcome window has closed yet"}
        latest = self.runs[-1]
        rows = []
        for band, u in latest.bands.items():
            rows.append({"band": band, "treated": u.treated, "control": u.control,
                         "treated_rate": u.treated_rate, "control_rate": u.control_rate, "uplift": u.absolute,
                         "ci_low": u.ci_low, "ci_high": u.ci_high, "relative": u.relative, "p_value": u.p_value,
                         "detectable_uplift": detectable_uplift(u.treated + u.control, u.control_rate,
                                                                u.control / (u.treated + u.control),
                                                                power=h.power, alpha=h.alpha)})
            meta.update({f"{band}_uplift": u.absolute, f"{band}_uplift_ci_low": u.ci_low,
                         f"{band}_uplift_ci_high": u.ci_high, f"{band}_relative_uplift": u.relative,
                         f"{band}_p_value": u.p_value, f"{band}_treated_rate": u.treated_rate,
                         f"{band}_control_rate": u.control_rate, f"{band}_treated": u.treated,
                         f"{band}_control": u.control})
        table = pl.DataFrame(rows)
        curve = [table[c].to_numpy().astype(float) for c in ("uplift", "ci_low", "ci_high")]
        return {**meta, "scored_at": latest.scored_at, "window_end": latest.window_end,
                "uplift": report.Table(table.with_columns(pl.col(pl.Float64).round(4)), rows=3),
                "uplift_plot": report.Image("Uplift", uplift_plot(table["band"].to_list(), *curve)),
                "results": report.Json({b: u.to_json() for b, u in latest.bands.items()})}


def measure_audience_uplift(stage: StageContext) -> UpliftReport:
    """For every evaluated run whose audiences were activated with a control group: per band, the activated
    members' conversion against their control group's, oldest run first."""
    store, names = stage.store, stage.names
    found = []
    for outcome in evaluated_runs(store, names):
        activation = ActivationRun.load_if_any(store, names.activation_run(outcome.scored_at))
        if activation is None or activation.holdout_share <= 0:
            continue
        frame = store.read_parquet([outcome.outcomes_key])
        bands = {}
        for band in BANDS:
            in_band = frame.filter(pl.col("band") == band)
            treated = in_band.filter(pl.col(ID).is_in(activation.members(store, band).implode()))
            control = in_band.filter(pl.col("group") == CONTROL)
            if treated.height and control.height:
                bands[band] = measure_uplift(treated.height, int(treated["converted"].sum()),
                                             control.height, int(control["converted"].sum()))
        found.append(AudienceUplift(outcome.scored_at, outcome.window_end, activation.holdout_share, bands))
    return UpliftReport(found, stage.spec.holdout)
