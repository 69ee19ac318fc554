"""Scores back into AEP, audiences per score band, and their activation to storage.

Built only when the model's ``write_back.enabled`` is true: a dry run writes nothing to the Profile
store, creates no audience and activates nothing.
"""

import dagster as dg

from ..ml.holdout import size_control_group
from ..ml.plots import audience_sizes_plot, markdown_image
from ..pipeline.audiences import BANDS
from ..pipeline.write_back import activate_model_audiences, publish_scores, refresh_audiences
from ..resources import AEPResource, StorageResource
from .instance import ACTIVATION, Instance


def build(m: Instance) -> list:
    spec = m.spec
    score_key = m.key("aep_score_dataset")

    @dg.asset(key=score_key, group_name=m.group(ACTIVATION), deps=[m.key("propensity_scores")], kinds={"adobe"},
              check_specs=[dg.AssetCheckSpec("batch_succeeded", asset=score_key, blocking=True,
                                             description="The score batch succeeded with one row per profile "
                                                         "written.")])
    def aep_score_dataset(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """The scores ingested into the model's profile-enabled score dataset, with the model's identity
        namespace as the primary identity. A full rescore's batch replaces the earlier ones; an incremental
        rescore adds a batch with only the changed profiles' rows, which Profile merges over their previous
        scores. The dataset carries the model's ownership tag; one of that name it did not create is refused."""
        stage = m.stage(storage, aep=aep)
        published = publish_scores(stage)
        meta = {"dataset_id": published.dataset["id"],
                "dagster/table_name": stage.client.catalog.table_name(published.dataset),
                "mode": published.candidate.mode, "model_version": published.candidate.model_version,
                "profiles_written": published.rows}
        if published.batch is None:
            meta.update({"dagster/row_count": 0, "batch_id": "none"})
        else:
            meta.update({"batch_id": published.batch["id"], "batch_status": published.batch["status"],
                         "dagster/row_count": published.written})
        return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
            check_name="batch_succeeded", passed=published.succeeded,
            metadata={"written": published.written, "rows": published.rows})])

    @dg.asset(key=m.key("propensity_audiences"), group_name=m.group(ACTIVATION), deps=[score_key],
              kinds={"adobe", "pql"})
    def propensity_audiences(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """High, medium and low propensity audiences as PQL segment definitions on the score band (percentile
        thresholds chosen from held-out gains), evaluated by a segment job."""
        refresh = refresh_audiences(m.stage(storage, aep=aep))
        audiences, published = refresh.audiences, refresh.published
        expected = published.expected_conversion_rate
        return dg.MaterializeResult(metadata={
            **_holdout_metadata(audiences, expected),
            **{f"{band}_size": audiences.size(band) for band in BANDS},
            **{f"{band}_expected_conversion_rate": float(expected.get(band, float("nan"))) for band in BANDS},
            "expected_conversion_horizon_days": published.horizon_days or 0,
            "segments": dg.MetadataValue.json({band: {"id": s["id"], "name": s["name"],
                                                      "pql": s["expression"]["value"],
                                                      "change": audiences.changes[band]}
                                               for band, s in audiences.segments.items()}),
            "segment_job_id": audiences.job["id"],
            "sizes_across_runs": dg.MetadataValue.md(markdown_image("Audience sizes",
                                                                    audience_sizes_plot(refresh.history))),
            "total_profiles": int(audiences.job["metrics"].get("totalProfiles", 0)),
        })

    @dg.asset(key=m.key("audience_activation"), group_name=m.group(ACTIVATION), deps=[m.key("propensity_audiences")],
              kinds={"adobe", "csv"})
    def audience_activation(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """Each audience's members written to storage by an AEP file destination flow (CSV per audience); the
        control groups (holdout.share) stay in AEP and are never activated."""
        stage = m.stage(storage, aep=aep)
        done, segments = activate_model_audiences(stage)
        store = stage.store
        return dg.MaterializeResult(metadata={
            "flow_id": done.flow["id"],
            "run_ids": dg.MetadataValue.json({s["name"]: done.runs[s["id"]]["id"] for s in segments.values()}),
            "files": dg.MetadataValue.json([done.files[s["id"]] for s in segments.values()]),
            **{f"{band}_members": done.members(s["id"]) for band, s in segments.items()},
            **{f"{band}_uri": store.uri(done.files[s["id"]]) for band, s in segments.items()},
        })

    def _holdout_metadata(audiences, expected: dict) -> dict:
        """Per band: the control group's size, the uplift it can detect, and the share the target uplift needs."""
        h = spec.holdout
        if h.share <= 0:
            return {"holdout": "none: every member is activated (set holdout.share to measure uplift)"}
        meta = {"holdout_share": h.share, "target_uplift": h.target_uplift}
        for band in BANDS:
            control = audiences.control_size(band)
            s = size_control_group(audiences.size(band) + control, float(expected.get(band, float("nan"))), h.share,
                                   h.target_uplift, power=h.power, alpha=h.alpha)
            meta.update({f"{band}_control_size": control, f"{band}_detectable_uplift": s.detectable_uplift,
                         f"{band}_control_share_needed": s.share_needed if s.share_needed is not None
                         else float("nan")})
        return meta

    return [aep_score_dataset, propensity_audiences, audience_activation]
