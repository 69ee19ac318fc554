"""Audiences per score band as PQL segment definitions, evaluated by a segment job, then activated."""

from dataclasses import dataclass

from ..aep import AEPClient
from ..ml.scoring import Bands


def band_pql(tenant: str, bands: Bands) -> dict[str, str]:
    field = f"_{tenant}.propensityPercentile"
    return {
        "high": f"{field} >= {bands.high_min_percentile}",
        "medium": f"{field} >= {bands.medium_min_percentile} and {field} < {bands.high_min_percentile}",
        "low": f"{field} < {bands.medium_min_percentile}",
    }


@dataclass
class Audiences:
    segments: dict[str, dict]  # band -> segment definition
    changes: dict[str, str]
    job: dict

    def size(self, band: str) -> int:
        return int(self.job["metrics"]["segmentedProfileCounter"].get(self.segments[band]["id"], 0))


def build_audiences(client: AEPClient, names: dict[str, str], bands: Bands, timeout_s: float = 3600) -> Audiences:
    pql = band_pql(client.schemas.tenant_id(), bands)
    segments, changes = {}, {}
    for band, name in names.items():
        segments[band], changes[band] = client.segmentation.ensure_segment(
            name, pql[band], description=f"Profiles in the {band} propensity band ({pql[band]}).")
    job = client.segmentation.evaluate([s["id"] for s in segments.values()], timeout_s=timeout_s)
    return Audiences(segments, changes, job)
