"""Automation per model: rescore when new events land in its source datasets; retrain weekly once switched on."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import dagster as dg
import requests

from .aep.errors import AEPError
from .assets.instance import Instance
from .jobs import ModelJobs
from .pipeline.outcomes import runs_due
from .pipeline.rescoring import load_published
from .pipeline.sources import resolve_sources
from .resources import AEPResource, StorageResource

LOOKBACK_MS = 3_600_000  # a batch is created before it succeeds: look back this far for late successes
SENSOR_TIMEOUT_S = 10.0
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


@dataclass
class BatchCursor:
    """The newest batch creation time seen, and the ids seen within LOOKBACK_MS of it."""

    created: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # batch id -> created (ms)

    @staticmethod
    def parse(text: str | None) -> "BatchCursor":
        return BatchCursor(**json.loads(text)) if text else BatchCursor()

    def advance(self, batches: list[dict]) -> "BatchCursor":
        seen = {**self.seen, **{b["id"]: int(b["created"]) for b in batches}}
        created = max([self.created, *seen.values()])
        return BatchCursor(created, {i: c for i, c in seen.items() if c > created - LOOKBACK_MS})

    def dump(self) -> str:
        return json.dumps(asdict(self))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds") if ms else "the start"


def _run_key(batch_ids: list[str]) -> str:
    return "events-" + hashlib.sha256(",".join(sorted(batch_ids)).encode()).hexdigest()[:16]


def _scoring_run_in_progress(instance: dg.DagsterInstance, jobs: tuple[str, ...]) -> dg.DagsterRun | None:
    for job in jobs:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=IN_PROGRESS), limit=1)
        if runs:
            return runs[0]
    return None


def model_automation(m: Instance, jobs: ModelJobs) -> tuple[list[dg.SensorDefinition], dg.ScheduleDefinition]:
    """The model's new-events and outcome-window sensors (on by default) and weekly retraining schedule (off by
    default)."""
    names, spec = m.names, m.spec
    scoring_jobs = tuple(job.name for job in jobs.scoring)

    @dg.sensor(name=f"{m.name}_new_events_sensor", job=jobs.rescore,
               default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
               description=f"Polls Catalog for new successful batches of model {m.name}'s event datasets and "
                           "requests one rescore per set of new batches (a burst becomes one run); also rescores "
                           "when scores expire.")
    def new_events_sensor(context: dg.SensorEvaluationContext, aep: AEPResource, storage: StorageResource):
        cursor = BatchCursor.parse(context.cursor)
        try:
            client = aep.client_with_limits(timeout_s=SENSOR_TIMEOUT_S, max_retries=1)
            try:
                sources = resolve_sources(client, spec, names)
            except LookupError as exc:
                return dg.SkipReason(f"{exc}")
            after = str(max(cursor.created - LOOKBACK_MS, 0))
            recent = [b for ds in sources.events for b in client.catalog.iter_batches(
                ds.id, status="success", orderBy="asc:created", createdAfter=after)]
        except (AEPError, requests.RequestException) as exc:
            return dg.SkipReason(f"AEP is unreachable ({exc}); the cursor is kept and the next tick tries again.")
        watched = ", ".join(repr(ds.name) for ds in sources.events)
        new = [b for b in recent if b["id"] not in cursor.seen]
        published = load_published(storage.get(), names.scores_pointer)
        if not new:
            if published and datetime.fromisoformat(published.expires_at) <= datetime.now(UTC):
                return dg.RunRequest(run_key=f"expired-{published.scored_at}",
                                     tags={"aep_assets/trigger": "scores_expired"})
            return dg.SkipReason(f"No new successful batches in {watched} since {_iso(cursor.created)}.")
        running = _scoring_run_in_progress(context.instance, scoring_jobs)
        if running is not None:  # leave the cursor: these batches join the next rescore, as one run
            return dg.SkipReason(f"{len(new)} new batch(es) wait for run {running.run_id} ({running.job_name}) to "
                                 "finish; they will be rescored together on a later tick.")
        advanced = cursor.advance(new).dump()
        if published is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"{len(new)} new batch(es), but no scores are published yet; materialise {m.name} first."),
                cursor=advanced)
        unscored = [b["id"] for b in new if b["id"] not in set(published.event_batches)]
        if not unscored:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"{len(new)} new batch(es) are already reflected in the published scores."), cursor=advanced)
        context.log.info("requesting a rescore for %d new batch(es): %s", len(unscored), ", ".join(unscored))
        request = dg.RunRequest(run_key=_run_key(unscored), tags={
            "aep_assets/trigger": "new_events", "aep_assets/model": m.name,
            "aep_assets/event_batches": ",".join(unscored)[:4000]})
        return dg.SensorResult(run_requests=[request], cursor=advanced)

    @dg.sensor(name=f"{m.name}_outcome_window_sensor", job=jobs.outcomes,
               default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
               description=f"Materialises model {m.name}'s score_outcomes (and audience_uplift) once a scoring "
                           "run's outcome window has closed.")
    def outcome_window_sensor(storage: StorageResource):
        try:
            due = runs_due(storage.get(), spec, names)
        except FileNotFoundError as exc:
            return dg.SkipReason(f"{exc}")
        if not due.due:
            closes = due.next_close
            when = f"the next closes at {closes.isoformat()}" if closes else "no scoring run waits"
            return dg.SkipReason(f"No outcome window has closed since the last look back; {when}.")
        stamps = sorted(names.run_stamp(r.scored_at) for r in due.due)
        return dg.RunRequest(run_key="outcomes-" + ",".join(stamps)[:200], tags={
            "aep_assets/trigger": "outcome_window_closed", "aep_assets/model": m.name,
            "aep_assets/scoring_runs": ",".join(stamps)[:4000]})

    weekly_retraining = dg.ScheduleDefinition(
        name=f"{m.name}_weekly_retraining", job=jobs.retrain, cron_schedule="0 3 * * 1",
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every Monday at 03:00 UTC: new training cutoffs, a new model if it passes its checks, and a "
                    "full rescore. Off until switched on in the UI (Automation).")
    return [new_events_sensor, outcome_window_sensor], weekly_retraining
