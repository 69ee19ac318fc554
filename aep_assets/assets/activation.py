"""Scores back into AEP, audiences per score band, and their activation to storage.

Built only when the model's ``write_back.enabled`` is true: a dry run writes nothing to the Profile
store, creates no audience and activates nothing.
"""

import dagster as dg
import polars as pl
import pyarrow as pa

from ..ml.feature_set import ID
from ..pipeline.audiences import BANDS, activate_audiences, build_audiences
from ..pipeline.handoff import ScoreRun
from ..pipeline.ingest import append_dataset_rows, replace_dataset_rows
from ..pipeline.ownership import ensure_owned_dataset
from ..pipeline.platform import require_schema
from ..pipeline.rescoring import FULL
from ..resources import AEPResource, StorageResource
from .instance import ACTIVATION, Instance


def _score_records(scores: pl.DataFrame, tenant: str) -> pa.Table:
    fields = scores.select(
        pl.col(ID).alias("userid"), pl.col("propensity"), pl.col("score").alias("propensityScore"),
        pl.col("percentile").alias("propensityPercentile"), pl.col("decile").alias("propensityDecile"),
        pl.col("band").alias("propensityBand"), pl.col("model_version").alias("propensityModelVersion"),
        pl.col("scored_at").alias("propensityScoredAt"), pl.col("expires_at").alias("propensityExpiresAt"),
        *[pl.col(f"reason_{k}").alias(f"propensityReason{k}") for k in (1, 2, 3)])
    return pa.table({f"_{tenant}": pa.StructArray.from_arrays(
        [fields[c].to_arrow() for c in fields.columns], names=fields.columns)})


def build(m: Instance) -> list:
    names, spec = m.names, m.spec
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
        client, store = aep.client(), storage.get()
        candidate = ScoreRun.load(store, names.scores_candidate, asset=f"{m.name}/propensity_scores")
        full = candidate.mode == FULL
        rows = store.read_parquet([candidate.key if full else candidate.changes_key])
        ds = ensure_owned_dataset(client, names.score_dataset, require_schema(client, "score", spec.events.namespace)[
            "$id"], m.name, profile=True, description=f"Propensity scores of model {m.name}, by aep_assets.")
        meta = {"dataset_id": ds["id"], "dagster/table_name": client.catalog.table_name(ds), "mode": candidate.mode,
                "model_version": candidate.model_version, "profiles_written": rows.height}
        if rows.height == 0:  # nothing changed: AEP already holds these scores
            candidate.save(store, names.scores_pointer)
            return dg.MaterializeResult(metadata={**meta, "dagster/row_count": 0, "batch_id": "none"},
                                        check_results=[dg.AssetCheckResult(check_name="batch_succeeded", passed=True,
                                                                           metadata={"written": 0})])
        records = [_score_records(rows, client.schemas.tenant_id())]
        load = replace_dataset_rows if full else append_dataset_rows
        batch = load(client, ds, records, owner=m.name)
        written = int(batch["metrics"].get("outputRecordCount", batch["metrics"].get("recordsWritten", 0)))
        succeeded = batch["status"] == "success" and written == rows.height
        if succeeded:  # these scores are now the ones AEP holds
            ScoreRun.from_json({**candidate.to_json(), "batch_id": batch["id"]}).save(store, names.scores_pointer)
        return dg.MaterializeResult(
            metadata={**meta, "batch_id": batch["id"], "batch_status": batch["status"], "dagster/row_count": written},
            check_results=[dg.AssetCheckResult(check_name="batch_succeeded", passed=succeeded,
                                               metadata={"written": written, "rows": rows.height})],
        )

    @dg.asset(key=m.key("propensity_audiences"), group_name=m.group(ACTIVATION), deps=[score_key],
              kinds={"adobe", "pql"})
    def propensity_audiences(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """High, medium and low propensity audiences as PQL segment definitions on the score band (percentile
        thresholds chosen from held-out gains), evaluated by a segment job."""
        client, store = aep.client(), storage.get()
        published = ScoreRun.load(store, names.scores_pointer, asset=f"{m.name}/aep_score_dataset")
        audiences = build_audiences(client, names, published.band_thresholds)
        sizes = {band: audiences.size(band) for band in BANDS}
        expected = published.expected_conversion_rate
        return dg.MaterializeResult(metadata={
            **{f"{band}_size": n for band, n in sizes.items()},
            **{f"{band}_expected_conversion_rate": float(expected.get(band, float("nan"))) for band in BANDS},
            "expected_conversion_horizon_days": published.horizon_days or 0,
            "segments": dg.MetadataValue.json({band: {"id": s["id"], "name": s["name"],
                                                      "pql": s["expression"]["value"],
                                                      "change": audiences.changes[band]}
                                               for band, s in audiences.segments.items()}),
            "segment_job_id": audiences.job["id"],
            "total_profiles": int(audiences.job["metrics"].get("totalProfiles", 0)),
        })

    @dg.asset(key=m.key("audience_activation"), group_name=m.group(ACTIVATION), deps=[m.key("propensity_audiences")],
              kinds={"adobe", "csv"})
    def audience_activation(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
        """Each audience's members written to storage by an AEP file destination flow (CSV per audience)."""
        client, store = aep.client(), storage.get()
        tenant = client.schemas.tenant_id()
        segments = {band: client.segmentation.find_segment(names.audience(band)) for band in BANDS}
        if any(s is None for s in segments.values()):
            raise LookupError(f"The audiences do not exist in AEP yet; materialise {m.name}/propensity_audiences "
                              "first.")
        done = activate_audiences(client, store, names.flow("audience activation"), list(segments.values()),
                                  [f"_{tenant}.propensity", f"_{tenant}.propensityBand"],
                                  path=names.export_path("audiences"))
        return dg.MaterializeResult(metadata={
            "flow_id": done.flow["id"],
            "run_ids": dg.MetadataValue.json({s["name"]: done.runs[s["id"]]["id"] for s in segments.values()}),
            "files": dg.MetadataValue.json([done.files[s["id"]] for s in segments.values()]),
            **{f"{band}_members": done.members(s["id"]) for band, s in segments.items()},
            **{f"{band}_uri": store.uri(done.files[s["id"]]) for band, s in segments.items()},
        })

    return [aep_score_dataset, propensity_audiences, audience_activation]
