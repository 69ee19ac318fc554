"""Scores back into AEP, audiences per score band, and their activation to storage.

Built only when the model's ``write_back.enabled`` is true: a dry run writes nothing to the Profile
store, creates no audience and activates nothing.
"""

import dagster as dg

from ..pipeline.write_back import activate_model_audiences, publish_scores, refresh_audiences
from ..resources import AEPResource, StorageResource
from .instance import ACTIVATION, Instance
from .metadata import dagster_metadata, materialized


def build(m: Instance) -> list:
    score_key = m.key("aep_score_dataset")

    @dg.asset(key=score_key, group_name=m.group(ACTIVATION), deps=[m.key("propensity_scores")], kinds={"adobe"},
              check_specs=[dg.AssetCheckSpec("batch_succeeded", asset=score_key, blocking=True,
                                             description="The score batch succeeded with one row per profile "
                                                         "written.")])
    def aep_score_dataset(context: dg.AssetExecutionContext, aep: AEPResource,
                          storage: StorageResource) -> dg.MaterializeResult:
        """The scores ingested into the model's profile-enabled score dataset, with the model's identity
        namespace as the primary identity. A full rescore's batch replaces the earlier ones; an incremental
        rescore adds a batch with only the changed profiles' rows, which Profile merges over their previous
        scores. The dataset carries the model's ownership tag; one of that name it did not create is refused."""
        published = publish_scores(m.stage(storage, aep=aep))
        return materialized(context, published.metadata(), published.checks())

    @dg.asset(key=m.key("propensity_audiences"), group_name=m.group(ACTIVATION), deps=[score_key],
              kinds={"adobe", "pql"})
    def propensity_audiences(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """High, medium and low propensity audiences as PQL segment definitions on the score band (percentile
        thresholds chosen from held-out gains), evaluated by a segment job."""
        refresh = refresh_audiences(m.stage(storage, aep=aep))
        return dg.MaterializeResult(metadata=dagster_metadata(refresh.metadata()))

    @dg.asset(key=m.key("audience_activation"), group_name=m.group(ACTIVATION),
              deps=[m.key("propensity_audiences"), score_key],
              kinds={"adobe", "csv"})
    def audience_activation(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """Each audience's members written to storage by an AEP file destination flow (CSV per audience); the
        control groups (holdout.share) stay in AEP and are never activated."""
        activated = activate_model_audiences(m.stage(storage, aep=aep))
        return dg.MaterializeResult(metadata=dagster_metadata(activated.metadata()))

    return [aep_score_dataset, propensity_audiences, audience_activation]
