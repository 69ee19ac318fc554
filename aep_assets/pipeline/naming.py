"""Where one model instance keeps things: AEP object names, Query Service table prefixes, storage keys.

Everything a model creates is named after it, so two models in one sandbox never reach each other's
tables, flows, audiences or files.
"""

from dataclasses import dataclass

PROJECT = "aep_assets"


@dataclass(frozen=True)
class Names:
    model: str
    score_dataset_name: str | None = None  # write_back.dataset; None: named after the model

    def table_prefix(self, kind: str) -> str:
        """CTAS tables: ``aep_assets_<model>_<kind>_<hash>``."""
        return f"{PROJECT}_{self.model}_{kind}"

    def flow(self, kind: str) -> str:
        return f"{PROJECT} {self.model} {kind}"

    def query(self, kind: str) -> str:
        return f"{PROJECT} {self.model} {kind}"

    def export_path(self, kind: str) -> str:
        return f"{PROJECT}/{self.model}/{kind}"

    def key(self, relative: str) -> str:
        """A storage key of this model's files."""
        return f"{self.model}/{relative}"

    def audience(self, band: str) -> str:
        return f"{PROJECT} {self.model} {band} propensity"

    def control_audience(self, band: str) -> str:
        return f"{self.audience(band)} control"

    def persuadable_audience(self) -> str:
        return f"{PROJECT} {self.model} persuadable"

    def persuadable_control(self) -> str:
        return f"{self.persuadable_audience()} control"

    @property
    def uplift_dataset(self) -> str:
        return f"{PROJECT} {self.model} Uplift Scores"

    @property
    def score_dataset(self) -> str:
        return self.score_dataset_name or f"{PROJECT} {self.model} Propensity Scores"

    @property
    def profile_dataset(self) -> str:  # simulated sources only
        return f"{PROJECT} {self.model} Profiles"

    @property
    def event_dataset(self) -> str:  # simulated sources only
        return f"{PROJECT} {self.model} Experience Events"

    # storage keys of what one asset hands the next (see pipeline/handoff.py)
    @property
    def feature_table(self) -> str:
        return self.key("features/feature_table.json")

    @property
    def training_export(self) -> str:
        return self.key("exports/training_export.json")

    @property
    def scoring_export(self) -> str:
        return self.key("exports/scoring_features.json")

    @property
    def models(self) -> str:
        return self.key("models")

    @property
    def scores_pointer(self) -> str:  # the scores AEP holds
        return self.key("scores/current.json")

    @property
    def scores_candidate(self) -> str:  # scored, not yet written back
        return self.key("scores/candidate.json")

    @property
    def scores(self) -> str:
        return self.key("scores")

    @property
    def score_runs(self) -> str:  # one ScoreRun per scoring run, for looking back once its window closes
        return self.key("scores/runs")

    @staticmethod
    def run_stamp(scored_at: str) -> str:
        """A scoring run's name in storage keys: its scored_at as YYYYMMDDTHHMMSS."""
        return scored_at.replace(":", "").replace("-", "")[:15]

    def score_run(self, scored_at: str) -> str:
        return f"{self.score_runs}/{self.run_stamp(scored_at)}.json"

    def activation_run(self, scored_at: str) -> str:  # the activation of one published scoring run
        return self.key(f"activation/{self.run_stamp(scored_at)}.json")

    @property
    def outcomes(self) -> str:
        return self.key("outcomes")

    @property
    def audience_sizes(self) -> str:  # each segment evaluation's sizes, for plotting them across runs
        return self.key("activation/audience_sizes.json")

    @property
    def activation_pointer(self) -> str:  # the last activation: who was activated, from which scores
        return self.key("activation/current.json")

    @property
    def simulation(self) -> str:
        return self.key("simulation")

    @property
    def uplift_model(self) -> str:  # the latest uplift model's record (UpliftModelRun)
        return self.key("uplift/model.json")

    def uplift_model_file(self, version: str) -> str:
        return self.key(f"uplift/models/{version}.json")

    def uplift_scores(self, scored_at: str) -> str:  # one published run's uplift scores (UpliftScoreRun)
        return self.key(f"uplift/scores/{self.run_stamp(scored_at)}.json")

    def uplift_scores_file(self, scored_at: str) -> str:  # Parquet: identity, uplift, uplift_band, group
        return self.key(f"uplift/scores/{self.run_stamp(scored_at)}.parquet")

    def uplift_activation(self, scored_at: str) -> str:  # the persuadable audience's activation (UpliftActivation)
        return self.key(f"uplift/activation/{self.run_stamp(scored_at)}.json")

    @property
    def uplift_scores_pointer(self) -> str:
        return self.key("uplift/scores/current.json")

    def uplift_truth(self, scored_at: str) -> str:  # the demo's true uplift per profile, at an activation
        return self.key(f"simulation/uplift_truth/{self.run_stamp(scored_at)}.parquet")

    @property
    def simulation_truth(self) -> str:
        return self.key("simulation/truth.parquet")
