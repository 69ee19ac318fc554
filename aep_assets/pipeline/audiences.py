"""Audiences per score band as PQL segment definitions, evaluated by a segment job, then activated."""

from dataclasses import dataclass
from datetime import UTC, datetime

from ..aep import AEPClient
from ..ml.scoring import Bands
from ..storage import Storage
from .naming import Names

BANDS = ("high", "medium", "low")


def band_pql(tenant: str, bands: Bands) -> dict[str, str]:
    """One audience per band, on the band field rather than on percentile ranges: a profile that converted
    since its last score gets the band 'converted' and so leaves every audience. ``bands`` (the percentile
    thresholds behind each band) goes into each audience's description."""
    return {band: f'_{tenant}.propensityBand = "{band}"' for band in BANDS}


def band_rule(band: str, bands: Bands) -> str:
    if band == "high":
        return f"percentile >= {bands.high_min_percentile}"
    if band == "medium":
        return f"{bands.medium_min_percentile} <= percentile < {bands.high_min_percentile}"
    return f"percentile < {bands.medium_min_percentile}"


@dataclass
class Audiences:
    segments: dict[str, dict]  # band -> segment definition
    changes: dict[str, str]
    job: dict

    def size(self, band: str) -> int:
        return int(self.job["metrics"]["segmentedProfileCounter"].get(self.segments[band]["id"], 0))


def build_audiences(client: AEPClient, names: Names, bands: Bands, timeout_s: float = 3600) -> Audiences:
    """One segment per band, named after the model, so two models' audiences never meet. The PQL reads the
    score dataset's fields, which every model shares: each model's segment matches the profiles whose latest
    score is in its band (Profile merges score datasets by the newest timestamp)."""
    pql = band_pql(client.schemas.tenant_id(), bands)
    segments, changes = {}, {}
    for band in BANDS:
        segments[band], changes[band] = client.segmentation.ensure_segment(
            names.audience(band), pql[band],
            description=f"Profiles in the {band} propensity band of model {names.model} ({band_rule(band, bands)} "
                        "of the scored profiles), managed by aep_assets.")
    job = client.segmentation.evaluate([s["id"] for s in segments.values()], timeout_s=timeout_s)
    return Audiences(segments, changes, job)


@dataclass
class Activation:
    flow: dict
    runs: dict[str, dict]  # segment id -> finished run
    files: dict[str, str]  # segment id -> storage key of its member file

    def members(self, segment_id: str) -> int:
        return int(self.runs[segment_id]["metrics"]["recordSummary"]["outputRecordCount"])


def activate_audiences(client: AEPClient, storage: Storage, flow_name: str, segments: list[dict],
                       attributes: list[str], path: str, timeout_s: float = 3600) -> Activation:
    """Run the destination flow ad hoc and find each audience's file by AEP's filename template
    ``%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%`` (the run's start)."""
    target, prefix = storage.export_target(path)
    flow, _ = client.flows.ensure_audience_flow(flow_name, segments, target, attributes)
    run_ids = client.flows.activate_audiences_now(flow["id"], [s["id"] for s in segments])
    runs = {seg: client.flows.wait_for_run(run, timeout_s=timeout_s) for seg, run in run_ids.items()}
    keys = storage.list_keys(prefix)
    files = {}
    for seg, run in runs.items():
        stamp = datetime.fromtimestamp(run["metrics"]["durationSummary"]["startedAtUTC"] / 1000, UTC)
        matches = [k for k in keys if f"_{seg}_{stamp:%Y%m%d_%H%M%S}" in k]
        if len(matches) != 1:
            raise FileNotFoundError(f"Activation run {run['id']} of segment {seg} should have written one file "
                                    f"under {storage.uri(prefix)}; found {matches}.")
        files[seg] = matches[0]
    return Activation(flow, runs, files)
