"""Audiences per score band as PQL segment definitions, evaluated by a segment job, then activated."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from ..aep import AEPClient
from ..ml.feature_set import ID
from ..ml.holdout import CONTROL, TREATMENT, HoldoutGroups
from ..ml.scoring import BANDS, Bands
from ..storage import Storage
from .naming import Names


def band_pql(tenant: str, bands: Bands, group: str | None = None) -> dict[str, str]:
    """One audience per band, on the band field rather than on percentile ranges: a profile that converted
    since its last score gets the band 'converted' and so leaves every audience. With a control group, the
    band's audience keeps only the ``group`` ('treatment' for the activated audience, 'control' for the
    held-out one). ``bands`` (the percentile thresholds behind each band) goes into each audience's
    description."""
    only = f' and _{tenant}.propensityGroup = "{group}"' if group else ""
    return {band: f'_{tenant}.propensityBand = "{band}"{only}' for band in BANDS}


def holdout_groups(scores: pl.DataFrame, holdout: HoldoutGroups) -> pl.DataFrame:
    """The scores with a ``group`` column: each band audience's members split as the model's holdout says; None
    for rows in no audience (converted markers)."""
    groups = holdout.of(scores[ID], scores["band"])
    return scores.with_columns(pl.Series("group", groups, dtype=pl.Utf8))


def band_rule(band: str, bands: Bands) -> str:
    if band == "high":
        return f"percentile >= {bands.high_min_percentile}"
    if band == "medium":
        return f"{bands.medium_min_percentile} <= percentile < {bands.high_min_percentile}"
    return f"percentile < {bands.medium_min_percentile}"


@dataclass
class Audiences:
    segments: dict[str, dict]  # band -> segment definition (the members to activate)
    changes: dict[str, str]
    job: dict
    controls: dict[str, dict] = field(default_factory=dict)  # band -> its control group's segment, if any

    def size(self, band: str) -> int:
        return self._count(self.segments[band])

    def control_size(self, band: str) -> int:
        return self._count(self.controls[band]) if band in self.controls else 0

    def _count(self, segment: dict) -> int:
        return int(self.job["metrics"]["segmentedProfileCounter"].get(segment["id"], 0))


def build_audiences(client: AEPClient, names: Names, bands: Bands, *, holdout_share: float = 0.0,
                    timeout_s: float = 3600) -> Audiences:
    """One segment per band, named after the model, so two models' audiences never meet, and with a holdout
    one control segment per band beside it. The PQL reads the score dataset's fields, which every model
    shares: each model's segment matches the profiles whose latest score is in its band (Profile merges
    score datasets by the newest timestamp)."""
    tenant = client.schemas.tenant_id()
    held_out = holdout_share > 0
    pql = band_pql(tenant, bands, TREATMENT if held_out else None)
    segments, changes, controls = {}, {}, {}
    for band in BANDS:
        rule = f"{band_rule(band, bands)} of the scored profiles"
        segments[band], changes[band] = client.segmentation.ensure_segment(
            names.audience(band), pql[band],
            description=f"Profiles in the {band} propensity band of model {names.model} ({rule}"
                        f"{', less its control group' if held_out else ''}), managed by aep_assets.")
    if held_out:
        control_pql = band_pql(tenant, bands, CONTROL)
        for band in BANDS:
            controls[band], _ = client.segmentation.ensure_segment(
                names.control_audience(band), control_pql[band],
                description=f"The control group of {names.audience(band)!r}: {holdout_share:.0%} of its members, "
                            "chosen by a stable hash, kept out of activation to measure its uplift; managed by "
                            "aep_assets.")
    job = client.segmentation.evaluate([s["id"] for s in (*segments.values(), *controls.values())],
                                       timeout_s=timeout_s)
    return Audiences(segments, changes, job, controls)


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
