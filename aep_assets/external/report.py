"""What every scoring job reports back to Dagster through Pipes."""

import resource
import sys
from pathlib import Path

from ..ml.score_summary import ScoreSummary

SUMMARY = "score_summary"  # the custom message's key


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux from VmHWM: getrusage's maxrss survives exec, so a
    job started by a large process would report its parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def report(pipes, summary: ScoreSummary, *, engine: str, seconds: float) -> None:
    pipes.report_custom_message({SUMMARY: summary.to_json()})
    pipes.report_asset_materialization(metadata={
        "engine": engine, "scored_rows": summary.rows, "scoring_seconds": round(seconds, 2),
        "scoring_peak_rss_mb": peak_rss_mb()})
