"""Periodic jobs (Procrastinate's periodic tasks), deferred by whichever worker is up.

- ``sealbill.cycles``: each day, start the cycle of every organization whose billing day it
  is (the period is the current month; a run that exists already is only advanced);
- ``sealbill.retry_bounced``: hourly, advance every run left ``sending`` (its slices retry
  the temporary failures whose backoff has passed);
- ``sealbill.expire_links``: hourly, verification links past their expiry are closed;
- ``sealbill.stalled``: every few seconds, a job whose worker stopped sending heartbeats
  (SIGKILL, a lost machine) is put back in the queue; its rerun is safe (see ``stages``).
  A twin enqueued meanwhile (same queueing lock) is cancelled first (:func:`requeue_stalled`).

The scheduling decisions are pure functions (:func:`due_organizations`, :func:`period_for`),
unit-tested; the tasks only read the tables and call them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import UTC, date, datetime

import procrastinate
import sqlalchemy as sa

from sealbill.workers.queue import engine, tasks

log = logging.getLogger(__name__)
BILLING_DAY_ENV = "SEALBILL_BILLING_DAY"
STALLED_AFTER = float(os.environ.get("SEALBILL_STALLED_SECONDS", "30"))


def billing_day() -> int:
    """The day of the month cycles start (1-28, default 1), from the configuration."""
    day = int(os.environ.get(BILLING_DAY_ENV, "1"))
    if not 1 <= day <= 28:
        raise ValueError(f"{BILLING_DAY_ENV}: expected a day from 1 to 28, got {day}")
    return day


def period_for(today: date) -> str:
    return f"{today.year:04d}-{today.month:02d}"


def due_organizations(orgs: Iterable[tuple[int, int | None]], today: date,
                      started: set[tuple[int, str]], default_day: int = 1) -> list[int]:
    """Organizations ``(id, billing day or None)`` whose cycle starts ``today`` and has no
    run for this period yet. A day past the month's end never comes: days are 1-28."""
    period = period_for(today)
    return [org_id for org_id, day in orgs
            if (day or default_day) == today.day and (org_id, period) not in started]


@tasks.periodic(cron="0 2 * * *", periodic_id="cycles")
@tasks.task(name="sealbill.cycles", queue="sealbill", queueing_lock="cycles")
def cycles(timestamp: int) -> list[int]:
    from sealbill.app.distributed import enqueue_run
    from sealbill.store.schema import billing_runs, organizations

    today = datetime.fromtimestamp(timestamp, UTC).date()
    with engine().begin() as conn:
        orgs = [(int(i), None) for i in conn.execute(sa.select(organizations.c.id)).scalars()]
        started = {(int(o), str(p)) for o, p in conn.execute(
            sa.select(billing_runs.c.organization_id, billing_runs.c.period))}
    due = due_organizations(orgs, today, started, billing_day())
    for org_id in due:
        enqueue_run(engine(), org_id, period_for(today), actor="schedule")
    return due


@tasks.periodic(cron="17 * * * *", periodic_id="retry_bounced")
@tasks.task(name="sealbill.retry_bounced", queue="sealbill", queueing_lock="retry_bounced")
def retry_bounced(timestamp: int) -> int:
    from sealbill.store.schema import billing_runs
    from sealbill.workers.stages import _advance

    with engine().begin() as conn:
        runs = conn.execute(sa.select(billing_runs.c.organization_id, billing_runs.c.id)
                            .where(billing_runs.c.status == "sending")).all()
    for org_id, run_id in runs:
        _advance(int(org_id), int(run_id))
    return len(runs)


@tasks.periodic(cron="41 * * * *", periodic_id="expire_links")
@tasks.task(name="sealbill.expire_links", queue="sealbill", queueing_lock="expire_links")
def expire_links(timestamp: int) -> int:
    from sealbill.workers.links import expire

    return expire(engine(), datetime.fromtimestamp(timestamp, UTC))


@tasks.periodic(cron="* * * * * */5", periodic_id="stalled")
@tasks.task(name="sealbill.stalled", queue="sealbill", queueing_lock="stalled", pass_context=True)
async def stalled(context, timestamp: int) -> int:  # type: ignore[no-untyped-def]
    return await requeue_stalled(context.app.job_manager, STALLED_AFTER)


async def requeue_stalled(manager: procrastinate.manager.JobManager,
                          seconds_since_heartbeat: float) -> int:
    """Put back in the queue every job left ``doing`` by a worker silent for
    ``seconds_since_heartbeat``; returns how many were.

    While such a job hangs, the next ``advance`` may enqueue its twin: the same work under the
    same queueing lock (the lock only bars a second *waiting* job) and the same lock, so the
    twin cannot start before the hung job ends, and the hung job cannot go back to waiting
    beside the twin (the queueing lock's unique index). Neither would ever run: the twin is
    cancelled (it was never started; ``cancelled`` counts as done in the run's stages) and
    the hung job requeued. One job that cannot be requeued now (a new twin came in between)
    is left for the next round and does not stop the others."""
    count = 0
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat):
        try:
            await _requeue(manager, job)
        except procrastinate.exceptions.UniqueViolation:
            log.warning("stalled job %s: a twin came in while it was requeued; next round",
                        job.id)
            continue
        count += 1
    if count:
        log.warning("requeued %d job(s) of stopped workers", count)
    return count


async def _requeue(manager: procrastinate.manager.JobManager, job: procrastinate.jobs.Job
                   ) -> None:
    try:
        await manager.retry_job(job)
        return
    except procrastinate.exceptions.UniqueViolation:
        if job.queueing_lock is None:
            raise
    for twin in await manager.list_jobs_async(queueing_lock=job.queueing_lock, status="todo"):
        if twin.id is not None and twin.id != job.id:
            await manager.cancel_job_by_id_async(twin.id)
    await manager.retry_job(job)
