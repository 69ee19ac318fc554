"""Uplift: who the campaign changes, learnt from the control groups (uplift_model), scored and written back next
to the propensity (uplift_scores), the persuadable audience with its control group (persuadable_audiences), and
after the next window whether targeting by uplift beat targeting by propensity (targeting_comparison).

Built when the model learns uplift (uplift.enabled; by default, when holdout.share > 0 and the write-back is on).
"""

import dagster as dg

from ..pipeline.uplift import train_uplift
from ..pipeline.uplift_outcomes import compare_targeting
from ..pipeline.uplift_scoring import publish_uplift, steer_persuadable
from ..resources import AEPResource, StorageResource
from .instance import UPLIFT, Instance
from .metadata import dagster_metadata, materialized


def build(m: Instance) -> list:
    model_key = m.key("uplift_model")

    @dg.asset(key=model_key, group_name=m.group(UPLIFT), deps=[m.key("score_outcomes"), m.key("audience_activation")],
              kinds={"lightgbm", "polars"},
              check_specs=[dg.AssetCheckSpec(
                  "beats_random", asset=model_key, blocking=False,
                  description="The uplift model's Qini coefficient lies above zero with confidence on profiles it "
                              "did not see; one that does not steers no audience.")])
    def uplift_model(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
        """An X-learner (LightGBM) of the goal's uplift, trained on the randomised members (treated against
        control) of every activation whose outcome window has closed. Sized before it trains: with too few control
        profiles for the uplift in its top 30 % to be measurable down to holdout.target_uplift, it waits. Judged on
        a hashed part of the profiles it did not see: uplift curve, Qini coefficient with a bootstrap interval,
        uplift in the top 10/20/30 % with intervals, next to the propensity used as an uplift ranking."""
        trained = train_uplift(m.stage(storage))
        context.log.info("uplift model: %s", trained.run.status)
        return materialized(context, trained.metadata(), trained.checks())

    @dg.asset(key=m.key("uplift_scores"), group_name=m.group(UPLIFT), deps=[model_key, m.key("aep_score_dataset")],
              kinds={"adobe", "lightgbm"})
    def uplift_scores(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """The published scores' profiles with their predicted uplift and band (persuadable: the top
        uplift.audience_share above zero), written to the model's profile-enabled uplift dataset next to the
        propensity. Without a model that beat random targeting every band is 'none', so nothing is steered."""
        scored = publish_uplift(m.stage(storage, aep=aep))
        return dg.MaterializeResult(metadata=dagster_metadata(scored.metadata()))

    @dg.asset(key=m.key("persuadable_audiences"), group_name=m.group(UPLIFT),
              deps=[m.key("uplift_scores"), m.key("audience_activation")], kinds={"adobe", "pql", "csv"})
    def persuadable_audiences(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """The persuadable audience (its treatment members) and its control group as PQL segments, evaluated, and
        the audience activated by the model's file destination flow; its control group is never activated."""
        steered = steer_persuadable(m.stage(storage, aep=aep))
        return dg.MaterializeResult(metadata=dagster_metadata(steered.metadata()))

    @dg.asset(key=m.key("targeting_comparison"), group_name=m.group(UPLIFT),
              deps=[m.key("score_outcomes"), m.key("persuadable_audiences")], kinds={"polars"})
    def targeting_comparison(storage: StorageResource) -> dg.MaterializeResult:
        """Once a window closes on scores whose persuadable audience was activated: the uplift it realised against
        its control group, next to that of a propensity audience of the same size, each with its 95 % interval,
        and their difference with a bootstrap interval: did targeting by uplift beat targeting by propensity?"""
        compared = compare_targeting(m.stage(storage))
        return dg.MaterializeResult(metadata=dagster_metadata(compared.metadata()))

    return [uplift_model, uplift_scores, persuadable_audiences, targeting_comparison]

