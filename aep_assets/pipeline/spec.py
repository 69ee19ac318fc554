"""One propensity model, as its YAML file says: sources, goal, eligibility, features, cutoffs, write-back.

These are the ``attributes`` of a ``type: aep_assets.PropensityModel`` component instance. Their key
names are a contract users' files rely on; each is documented in the README with its default.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..ml.design import TemporalSplit
from ..ml.holdout import HoldoutGroups
from .naming import Names

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FEATURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
DEFAULT_IDENTITY = "identityMap['ECID'][0].id"
TENANT = "{tenant}"  # stands for the org's tenant id in any SQL expression: _{tenant}.userid


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventSource(Strict):
    datasets: list[str] = Field(default_factory=list, description="Experience Event datasets, by id or name.")
    identity: str = Field(default=DEFAULT_IDENTITY, description="SQL over an event row giving the profile's "
                                                                 "identity value.")
    namespace: str = Field(default="ECID", description="Identity namespace of that value; scores go back with it "
                                                       "as the primary identity.")


GoalKind = Literal["conversion", "churn", "value"]


class Goal(Strict):
    """What the model predicts over (T, T + outcome_days]: that an event matching ``condition`` occurs
    (conversion), that none does (churn), or the sum of ``value`` over such events (value)."""

    kind: GoalKind = Field(default="conversion", description="conversion: an event matching condition occurs; "
                           "churn: none does (the score is the probability of no such event); value: the sum of "
                           "goal.value over such events (e.g. spend in the next 90 days).")
    condition: str = Field(description="SQL boolean over an event row: the events the goal counts.")
    value: str | None = Field(default=None, description="kind value: SQL number over an event row, summed over the "
                              "matching events of the outcome window, e.g. commerce.order.priceTotal.")
    outcome_days: int = Field(default=30, ge=1, le=730, description="The outcome window: this many days after the "
                                                                    "cutoff.")

    @model_validator(mode="after")
    def _value(self) -> "Goal":
        if self.kind == "value" and not self.value:
            raise ValueError("goal.kind = 'value' needs goal.value, the SQL number summed over the outcome window, "
                             "e.g. value: commerce.order.priceTotal.")
        if self.kind != "value" and self.value:
            raise ValueError(f"goal.value is set but goal.kind is {self.kind!r}; set kind: value to predict the sum, "
                             "or remove goal.value.")
        return self


class Eligibility(Strict):
    """Who is in the model's population at a cutoff. The defaults depend on goal.kind: a conversion model
    excludes profiles that already reached the goal; a churn model keeps profiles active in the last
    outcome_days; a value model keeps everyone with events."""

    exclude_prior_goal: bool | None = Field(default=None, description="Keep only profiles without the goal before "
                                            "T. Default: true for kind conversion, false otherwise.")
    condition: str | None = Field(default=None, description="The profile must have such an event before T.")
    active_within_days: int | None = Field(default=None, ge=1, description="Some event in the last N days before "
                                           "T. Default: goal.outcome_days for kind churn, none otherwise.")


class FeatureEvent(Strict):
    name: str = Field(description="Feature name; the count feature is called this.")
    condition: str = Field(description="SQL boolean over an event row.")
    value: str | None = Field(default=None, description="SQL number over an event row, summed as <name>_value.")
    recency: bool | str = Field(default=True, description="Minutes since the last one: true names it "
                                                          "minutes_since_<name>, a string names it, false omits it.")
    first: bool | str = Field(default=True, description="Minutes since the first one (tenure), likewise "
                                                        "minutes_since_first_<name>.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not FEATURE_NAME.match(v):
            raise ValueError(f"feature name {v!r} must start with a letter and hold only letters, digits and _ "
                             "(it becomes a column name), e.g. 'purchases'.")
        return v


class Ratio(Strict):
    name: str
    numerator: str
    denominator: str


class Features(Strict):
    events: list[FeatureEvent] | None = Field(default=None, description="Default: the most frequent eventType "
                                              "values before the train cutoff, found by a query.")
    windows_days: list[int] = Field(default_factory=lambda: [7, 28, 90])
    ratios: list[Ratio] = Field(default_factory=list)
    top_event_types: int = Field(default=15, ge=1, le=100, description="How many eventType values a derived "
                                                                       "feature set takes.")

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, v: list[int]) -> list[int]:
        if any(d < 1 for d in v) or len(set(v)) != len(v):
            raise ValueError(f"windows_days {v} must be distinct whole days of at least 1, e.g. [7, 28, 90].")
        return sorted(v)


class Attribute(Strict):
    name: str
    field: str = Field(description="XDM path in the profile dataset, e.g. loyalty.points.")
    kind: Literal["number", "category", "days_since", "years_since"] = "number"
    categories: list[str] | None = Field(default=None, description="kind category: the values, coded 0, 1, ... "
                                                                   "in this order; others are NULL.")


class ProfileSource(Strict):
    dataset: str | None = None
    identity: str | None = Field(default=None, description="SQL over a profile row; default: the events' "
                                                           "identity expression.")
    attributes: list[Attribute | str] = Field(default_factory=list)


class Cutoffs(Strict):
    train: str | int = Field(default=60, description="ISO date, or days before today.")
    test: str | int = Field(default=30, description="ISO date, or days before today; at least outcome_days after "
                                                    "train.")

    @field_validator("train", "test")
    @classmethod
    def _iso(cls, v: str | int, info) -> str | int:
        if isinstance(v, str):
            parse_time(f"cutoffs.{info.field_name}", v)
        return v


class SparkScoring(Strict):
    """Where the Spark scoring job runs (README: Scoring on Spark)."""

    platform: Literal["local", "emr_serverless", "databricks"] = Field(
        default="local", description="'local': pyspark on this machine; 'emr_serverless' or 'databricks': a "
        "cluster, which reads the scoring features from and writes the scores to S3 storage.")
    master: str = Field(default="local[*]", description="The local Spark's master URL.")
    entry_point: str | None = Field(default=None, description="The cluster's copy of "
                                    "aep_assets/external/spark_score_job.py (s3://... or a Databricks path).")
    application_id: str | None = Field(default=None, description="EMR Serverless application (Spark, 7.x).")
    execution_role_arn: str | None = Field(default=None, description="EMR Serverless job runtime role.")
    spark_submit_parameters: str = Field(default="", description="EMR Serverless: e.g. --conf spark.archives="
                                         "s3://.../scoring_env.tar.gz#environment with this package installed.")
    cluster: dict = Field(default_factory=dict, description="Databricks: the run's new_cluster spec, or "
                          "{existing_cluster_id: ...}.")

    @model_validator(mode="after")
    def _cluster_settings(self) -> "SparkScoring":
        needed = {"emr_serverless": ("entry_point", "application_id", "execution_role_arn"),
                  "databricks": ("entry_point",)}.get(self.platform, ())
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"scoring.spark.platform = {self.platform!r} needs scoring.spark.{', '.join(missing)}; "
                             "see the README's 'Scoring on Spark' for what each is.")
        return self


class Scoring(Strict):
    as_of: str | None = Field(default=None, description="Score as of this ISO date or datetime; null = now.")
    valid_days: int = Field(default=7, ge=1)
    engine: Literal["subprocess", "spark", "local"] = Field(
        default="subprocess", description="Where propensity_scores scores, through Dagster Pipes: 'subprocess' "
        "(chunked, flat memory; a job of at most one chunk runs in the Dagster process), 'spark' (scoring.spark), or "
        "'local' (in the Dagster process, chunked).")
    chunk_rows: int = Field(default=100_000, ge=1_000, le=5_000_000, description="Rows per chunk of the "
                            "subprocess and local engines: memory grows with it, not with the population.")
    spark: SparkScoring = Field(default_factory=SparkScoring)

    @field_validator("as_of")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time("scoring.as_of", v)
        return v


class WriteBack(Strict):
    enabled: bool = Field(default=True, description="false: a dry run that writes nothing to the Profile store, "
                                                    "creates no audience and activates nothing.")
    dataset: str | None = Field(default=None, description="Score dataset name; null = one named after the model.")


class Holdout(Strict):
    """A randomised control group per audience: in AEP, never activated, so the audience's uplift can be measured."""

    share: float = Field(default=0.0, ge=0, le=0.5, description="Share of each audience's members held out as its "
                         "control group (propensityGroup 'control'); 0: no control group, everyone is activated.")
    salt: str | None = Field(default=None, description="Salt of the assignment hash; default: the model's name. "
                             "Each audience adds its band, so the groups of two audiences are independent.")
    target_uplift: float = Field(default=0.02, gt=0, lt=1, description="The absolute uplift in conversion rate the "
                                 "sizing helper sizes the control group for.")
    power: float = Field(default=0.8, gt=0, lt=1, description="Power of the uplift test the sizing assumes.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance of the uplift test (two-sided).")


class UpliftSettings(Strict):
    """An uplift model learnt from the control groups of past activations (docs/model.md, 'Uplift')."""

    enabled: bool | None = Field(default=None, description="Default: on when holdout.share > 0 and the write-back "
                                 "is enabled (the control groups are what it learns from).")
    evaluation_share: float = Field(default=0.5, ge=0.1, le=0.9, description="Share of the randomised profiles "
                                    "(chosen by a hash of the identity) kept out of training to evaluate the model.")
    audience_share: float = Field(default=0.2, gt=0, le=0.5, description="The persuadable audience: this share of "
                                  "the scored profiles with the highest predicted uplift (above zero).")
    resamples: int = Field(default=200, ge=20, le=5000, description="Bootstrap resamples of the Qini coefficient's "
                           "interval.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="The interval's confidence: a model whose Qini "
                              "interval does not lie above zero steers no audience.")


class Outcomes(Strict):
    alpha: float = Field(default=0.05, gt=0, lt=1, description="The score_outcomes check warns when a realised "
                         "rate leaves its expected interval; with every decile and band inside, a calibrated run "
                         "passes with probability 1 - alpha.")


class Sufficiency(Strict):
    min_goal_profiles: int = Field(default=500, ge=1, description="Per split; Customer AI asks for 500.")
    min_non_goal_profiles: int = Field(default=500, ge=1)
    recent_days: int = Field(default=30, ge=1, description="Some event must lie in the last N days before each "
                                                           "cutoff.")
    max_null_identity_share: float = Field(default=0.5, ge=0, le=1)


Severity = Literal["error", "warn"]
SEVERITY = ("error: a failure blocks what follows (the model stays challenger, the write-back does not run); "
            "warn: a failure only warns")


class AucFloorGate(Strict):
    min: float = Field(default=0.65, ge=0, le=1, description="Temporal-holdout ROC AUC must reach this (Customer AI "
                       "calls below 0.65 poor).")
    severity: Severity = Field(default="error", description=SEVERITY)


class CalibrationGate(Strict):
    max_ece: float = Field(default=0.05, gt=0, le=1, description="Temporal-holdout expected calibration error must "
                           "not exceed this.")
    severity: Severity = Field(default="error", description=SEVERITY)


class LeakageGate(Strict):
    sample_per_split: int = Field(default=100, ge=1, le=100_000, description="Feature rows per split recomputed "
                                  "from the raw events by no_leakage.")
    severity: Severity = Field(default="error", description=SEVERITY)


class DriftGate(Strict):
    warn: float = Field(default=0.1, gt=0, description="PSI (of the score, or of the features weighted by "
                        "importance) above which the drift check warns.")
    block: float = Field(default=0.25, gt=0, description="PSI above which the drift check fails and blocks the "
                         "write-back.")
    min_population_ratio: float = Field(default=0.5, ge=0, le=1, description="Fewer scored profiles than this "
                                        "share of the validated ones block (an identity that stopped matching).")
    severity: Severity = Field(default="error", description=SEVERITY + ". A dry run (write_back.enabled: false) "
                               "always warns: the gate only protects the write-back.")

    @model_validator(mode="after")
    def _order(self) -> "DriftGate":
        if self.warn > self.block:
            raise ValueError(f"gates.drift.warn = {self.warn} is above gates.drift.block = {self.block}; warn must "
                             "not exceed block, e.g. warn: 0.1, block: 0.25.")
        return self


class ChampionGate(Strict):
    tolerance: float = Field(default=0.01, ge=0, le=1, description="The new model may be this much below the "
                             "champion's ROC AUC on the same rows and still replace it.")
    severity: Severity = Field(default="warn", description="The check's severity; a new model that loses to the "
                               "champion never replaces it, whatever the severity.")


class Gates(Strict):
    """Every gate's threshold and severity, in one place of the model's YAML."""

    auc_floor: AucFloorGate = Field(default_factory=AucFloorGate)
    calibration: CalibrationGate = Field(default_factory=CalibrationGate)
    leakage: LeakageGate = Field(default_factory=LeakageGate)
    drift: DriftGate = Field(default_factory=DriftGate)
    champion: ChampionGate = Field(default_factory=ChampionGate)


class Simulation(Strict):
    """The CMLE demo's source: a simulation it ingests itself."""

    profiles: int = 100_000
    seed: int = 42
    behaviour_model: Literal["extended", "adobe"] = "extended"
    planted_uplift: float = Field(default=0.0, ge=0, le=0.5, description="The true effect of being activated: over "
                                  "an outcome window after an activation, the simulation converts this share of the "
                                  "band's activated members who would not have converted on their own.")
    planted_band: Literal["high", "medium", "low"] = Field(default="high", description="planted_effect uniform: "
                                                            "the audience whose activation has that effect.")
    planted_effect: Literal["uniform", "heterogeneous"] = Field(
        default="uniform", description="uniform: planted_uplift on planted_band's members. heterogeneous: on every "
        "activated member, as its segment responds (persuadables +planted_uplift, do-not-disturbs lose "
        "5 x planted_uplift of their own conversions, sure things and lost causes nothing; docs/model.md).")


class ModelSpec(Strict):
    name: str
    description: str = ""
    events: EventSource = Field(default_factory=EventSource)
    goal: Goal
    eligibility: Eligibility = Field(default_factory=Eligibility)
    features: Features = Field(default_factory=Features)
    profile: ProfileSource = Field(default_factory=ProfileSource)
    cutoffs: Cutoffs = Field(default_factory=Cutoffs)
    scoring: Scoring = Field(default_factory=Scoring)
    write_back: WriteBack = Field(default_factory=WriteBack)
    sufficiency: Sufficiency = Field(default_factory=Sufficiency)
    holdout: Holdout = Field(default_factory=Holdout)
    outcomes: Outcomes = Field(default_factory=Outcomes)
    uplift: UpliftSettings = Field(default_factory=UpliftSettings)
    gates: Gates = Field(default_factory=Gates)
    simulation: Simulation | None = Field(default=None, description="Set only for a simulated source (the demo).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"name {v!r} must be lowercase letters, digits and _, starting with a letter, at most "
                             "40 characters (it prefixes asset keys and AEP object names), e.g. 'cdnow'.")
        return v

    @model_validator(mode="after")
    def _sources(self) -> "ModelSpec":
        if self.simulation is None and not self.events.datasets:
            raise ValueError(f"model {self.name!r}: events.datasets is empty; name one or more Experience Event "
                             "datasets by id or name.")
        if self.uplift.enabled and not (self.holdout.share > 0 and self.write_back.enabled):
            raise ValueError(f"model {self.name!r}: uplift.enabled is true, but an uplift model learns from the "
                             f"control groups of activated audiences, and holdout.share = {self.holdout.share}, "
                             f"write_back.enabled = {self.write_back.enabled}; set holdout.share above 0 (e.g. 0.2) "
                             "with the write-back on, or remove uplift.enabled.")
        if self.simulation is not None and self.events.datasets:
            raise ValueError(f"model {self.name!r}: a simulated source makes its own datasets; remove "
                             "events.datasets or simulation.")
        return self

    @property
    def simulated(self) -> bool:
        return self.simulation is not None

    @property
    def names(self) -> Names:
        """Every name the model gives AEP objects and storage keys."""
        return Names(self.name, self.write_back.dataset)

    def for_run(self, overrides: dict[str, object]) -> "ModelSpec":
        """The definition one run works with: each override (a YAML key's dotted path and a value; None: not set)
        written over the YAML, and checked as the YAML is. Run config never decides anything else."""
        if all(value is None for value in overrides.values()):
            return self
        data = self.model_dump()
        for path, value in overrides.items():
            if value is None:
                continue
            *parents, leaf = path.split(".")
            node = data
            for part in parents:
                node = node[part]
            if leaf not in node:
                raise KeyError(f"{path} is not a key of a model's YAML")
            node[leaf] = value
        try:
            return ModelSpec.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])} = {e['input']!r}: {e['msg']}"
                                 for e in exc.errors())
            raise ValueError(f"model {self.name!r}: {problems}") from None

    @property
    def learns_uplift(self) -> bool:
        """An uplift model needs control groups, and activations to measure them against."""
        default = self.holdout.share > 0 and self.write_back.enabled
        return default if self.uplift.enabled is None else self.uplift.enabled

    @property
    def excludes_prior_goal(self) -> bool:
        e = self.eligibility.exclude_prior_goal
        return self.goal.kind == "conversion" if e is None else e

    @property
    def active_within_days(self) -> int | None:
        e = self.eligibility.active_within_days
        return (self.goal.outcome_days if self.goal.kind == "churn" else None) if e is None else e

    @property
    def holdout_groups(self) -> HoldoutGroups:
        """The control groups every scoring run of this model assigns (holdout.salt defaults to the name)."""
        return HoldoutGroups(self.holdout.share, self.holdout.salt or self.name)

    def temporal_split(self) -> TemporalSplit:
        """T1, T2 and the outcome window the feature table is built with."""
        return TemporalSplit(*self.cutoff_times(), self.goal.outcome_days)

    def cutoff_times(self, today: datetime | None = None) -> tuple[datetime, datetime]:
        today = today or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (_cutoff("cutoffs.train", self.cutoffs.train, today), _cutoff("cutoffs.test", self.cutoffs.test, today))


def parse_time(field: str, value: str) -> datetime:
    """An ISO date or datetime, in UTC when it names no zone."""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{field}' = {value!r} is not an ISO date or datetime; use e.g. '2026-10-29' or "
                         "'2026-10-29T00:00:00+00:00'.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cutoff(field: str, value: str | int, today: datetime) -> datetime:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"'{field}' = {value} days ago lies in the future; give a positive number of days.")
        return today - timedelta(days=value)
    return parse_time(field, value)
