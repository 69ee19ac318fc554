"""Scores back into AEP, audiences per score band, and their activation to storage."""

import json

import dagster as dg
import polars as pl
import pyarrow as pa

from ..constants import ACTIVATION, AUDIENCE_FLOW, AUDIENCE_NAMES, SCORES_CANDIDATE, SCORES_POINTER
from ..ml.scoring import Bands
from ..pipeline.audiences import activate_audiences, build_audiences
from ..pipeline.ingest import append_dataset_rows, replace_dataset_rows
from ..pipeline.platform import SCORE_DATASET, require_schema
from ..pipeline.rescoring import FULL
from ..resources import AEPResource, StorageResource


def _score_records(scores: pl.DataFrame, tenant: str) -> pa.Table:
    fields = scores.select(
        pl.col("userId").alias("userid"), pl.col("propensity"), pl.col("score").alias("propensityScore"),
        pl.col("percentile").alias("propensityPercentile"), pl.col("decile").alias("propensityDecile"),
        pl.col("band").alias("propensityBand"), pl.col("model_version").alias("propensityModelVersion"),
        pl.col("scored_at").alias("propensityScoredAt"), pl.col("expires_at").alias("propensityExpiresAt"),
        *[pl.col(f"reason_{k}").alias(f"propensityReason{k}") for k in (1, 2, 3)])
    return pa.table({f"_{tenant}": pa.StructArray.from_arrays(
        [fields[c].to_arrow() for c in fields.columns], names=fields.columns)})


@dg.asset(group_name=ACTIVATION, deps=["propensity_scores"], kinds={"adobe"},
          check_specs=[dg.AssetCheckSpec("batch_succeeded", asset="aep_score_dataset", blocking=True,
                                         description="The score batch succeeded with one row per profile written.")])
def aep_score_dataset(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """The scores ingested into a profile-enabled dataset whose schema has the tenant score fields and
    the ECID identity. A full rescore's batch replaces the earlier ones; an incremental rescore adds a
    batch with only the changed profiles' rows, which Profile merges over their previous scores."""
    client, store = aep.client(), storage.get()
    candidate = json.loads(store.read_bytes(SCORES_CANDIDATE))
    full = candidate["mode"] == FULL
    rows = store.read_parquet([candidate["key"] if full else candidate["changes_key"]])
    ds = client.catalog.find_dataset(SCORE_DATASET) or client.catalog.create_dataset(
        SCORE_DATASET, require_schema(client, "score")["$id"], profile=True,
        description="Propensity scores per profile.")
    meta = {"dataset_id": ds["id"], "dagster/table_name": client.catalog.table_name(ds), "mode": candidate["mode"],
            "model_version": candidate["model_version"], "profiles_written": rows.height}
    if rows.height == 0:  # nothing changed: AEP already holds these scores
        store.write_bytes(SCORES_POINTER, json.dumps(candidate).encode())
        return dg.MaterializeResult(metadata={**meta, "dagster/row_count": 0, "batch_id": "none"},
                                    check_results=[dg.AssetCheckResult(check_name="batch_succeeded", passed=True,
                                                                       metadata={"written": 0})])
    records = [_score_records(rows, client.schemas.tenant_id())]
    batch = (replace_dataset_rows if full else append_dataset_rows)(client, ds["id"], records)
    written = int(batch["metrics"].get("outputRecordCount", batch["metrics"].get("recordsWritten", 0)))
    succeeded = batch["status"] == "success" and written == rows.height
    if succeeded:  # these scores are now the ones AEP holds
        store.write_bytes(SCORES_POINTER, json.dumps({**candidate, "batch_id": batch["id"]}).encode())
    return dg.MaterializeResult(
        metadata={**meta, "batch_id": batch["id"], "batch_status": batch["status"], "dagster/row_count": written},
        check_results=[dg.AssetCheckResult(check_name="batch_succeeded", passed=succeeded,
                                           metadata={"written": written, "rows": rows.height})],
    )


@dg.asset(group_name=ACTIVATION, deps=["aep_score_dataset"], kinds={"adobe", "pql"})
def propensity_audiences(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """High, medium and low propensity audiences as PQL segment definitions on the score band (percentile
    thresholds chosen from held-out gains), evaluated by a segment job."""
    client, store = aep.client(), storage.get()
    pointer = json.loads(store.read_bytes(SCORES_POINTER))
    audiences = build_audiences(client, AUDIENCE_NAMES, Bands(**pointer["bands"]))
    sizes = {band: audiences.size(band) for band in AUDIENCE_NAMES}
    expected = pointer.get("expected_conversion_rate", {})
    return dg.MaterializeResult(metadata={
        **{f"{band}_size": n for band, n in sizes.items()},
        **{f"{band}_expected_conversion_rate": float(expected.get(band, float("nan"))) for band in AUDIENCE_NAMES},
        "expected_conversion_horizon_days": pointer.get("horizon_days") or 0,
        "segments": dg.MetadataValue.json({band: {"id": s["id"], "name": s["name"],
                                                  "pql": s["expression"]["value"], "change": audiences.changes[band]}
                                           for band, s in audiences.segments.items()}),
        "segment_job_id": audiences.job["id"],
        "total_profiles": int(audiences.job["metrics"].get("totalProfiles", 0)),
    })


@dg.asset(group_name=ACTIVATION, deps=["propensity_audiences"], kinds={"adobe", "csv"})
def audience_activation(aep: AEPResource, storage: StorageResource) -> dg.MaterializeResult:
    """Each audience's members written to storage by an AEP file destination flow (CSV per audience)."""
    client, store = aep.client(), storage.get()
    tenant = client.schemas.tenant_id()
    segments = {band: client.segmentation.find_segment(name) for band, name in AUDIENCE_NAMES.items()}
    if any(s is None for s in segments.values()):
        raise LookupError("The audiences do not exist in AEP yet; materialise propensity_audiences first.")
    done = activate_audiences(client, store, AUDIENCE_FLOW, list(segments.values()),
                              [f"_{tenant}.propensity", f"_{tenant}.propensityBand"], path="aep_assets/audiences")
    return dg.MaterializeResult(metadata={
        "flow_id": done.flow["id"],
        "run_ids": dg.MetadataValue.json({s["name"]: done.runs[s["id"]]["id"] for s in segments.values()}),
        "files": dg.MetadataValue.json([done.files[s["id"]] for s in segments.values()]),
        **{f"{band}_members": done.members(s["id"]) for band, s in segments.items()},
        **{f"{band}_uri": store.uri(done.files[s["id"]]) for band, s in segments.items()},
    })
