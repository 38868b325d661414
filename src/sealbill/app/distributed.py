"""The distributed cycle's use cases: start (or resume) a run on the queue, approve a held run
and let the workers continue, read a run's progress. PostgreSQL only.

``start``: the run's row, its rating chunks and their jobs (``rate``, one per chunk of
accounts) are written in ONE transaction, so a run exists with its jobs or not at all.
Starting a period that has a run already resumes it: the jobs its state calls for are
enqueued (:mod:`sealbill.workers.advance`), none twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app import audit, ids
from sealbill.app import runs as app_runs
from sealbill.app.context import READ, RUNS_WRITE, Actor
from sealbill.app.errors import Invalid, Problem, StateError
from sealbill.pipeline.billing.invoice import BillingError, open_run, period_bounds
from sealbill.store.db import is_postgres
from sealbill.store.schema import billing_runs, documents, invoices
from sealbill.workers.queue import NeedsPostgres as QueueNeedsPostgres
from sealbill.workers.queue import make_app, require_postgres


class NeedsPostgres(StateError):
    """Asked for the distributed cycle on a database that is not PostgreSQL (HTTP 409)."""

    title = "The distributed cycle needs PostgreSQL"


def _require_postgres(engine: Engine) -> None:
    if not is_postgres(engine):
        try:
            require_postgres(engine.url.drivername)
        except QueueNeedsPostgres as exc:
            raise NeedsPostgres(str(exc)) from None


def enqueue_run(engine: Engine, org_id: int, period: str, *, actor: str,
                audited_as: Actor | None = None) -> tuple[int, list[str]]:
    """The run of ``period`` (created if new, with its rating chunks and their ``rate`` jobs
    in the same transaction), or the jobs an existing run's state calls for; returns (run
    id, tasks enqueued). With ``audited_as``, its ``run.enqueue`` audit entry commits in
    that same transaction."""
    from sealbill.pipeline.billing.queued_rating import plan_chunks, rate_chunk_size
    from sealbill.workers.advance import advance

    start, end = period_bounds(period)
    app = make_app(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        found = conn.execute(sa.select(billing_runs.c.id).where(
            billing_runs.c.organization_id == org_id, billing_runs.c.period == period)).scalar()
        if found is not None:
            run_id = int(found)
        else:
            run_id = open_run(conn, org_id, period, start, end, actor)
            plan_chunks(conn, org_id, run_id, rate_chunk_size())
        enqueued = advance(conn, app, org_id, run_id)
        if audited_as is not None:
            audit.record(conn, audited_as, org_id, "run.enqueue", "run",
                         ids.encode(conn, org_id, "run", run_id),
                         after={"period": period, "enqueued": enqueued})
        return run_id, enqueued


def start(engine: Engine, actor: Actor, org_id: int, period: str) -> dict[str, Any]:
    """Enqueue the period's run for the workers (see the module)."""
    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    _require_postgres(engine)
    try:
        run_id, enqueued = enqueue_run(engine, org_id, period, actor=actor.name,
                                       audited_as=actor)
    except BillingError as exc:
        raise Invalid(str(exc), [Problem("period", str(exc))]) from None
    return {**progress_of(engine, org_id, run_id), "enqueued": enqueued}


def approve(engine: Engine, actor: Actor, org_id: int, ref: str, reason: str
            ) -> dict[str, Any]:
    """Approve a held run (four-eyes, as :func:`sealbill.app.runs.approve`); a run started on
    the queue then has its canary enqueued (``enqueued``). Two transactions: if this process
    dies between them, ``run start`` on the period (or the hourly ``retry_bounced`` sweep once
    it sends) enqueues what is missing. A run of the embedded mode is only approved."""
    from sealbill.workers.advance import advance

    data = app_runs.approve(engine, actor, org_id, ref, reason)
    run_id = app_runs._resolve(engine, actor, org_id, ref, READ)
    if is_postgres(engine) and on_queue(engine, org_id, run_id):
        with engine.begin() as conn:
            data["enqueued"] = advance(conn, make_app(engine.url.render_as_string(
                hide_password=False)), org_id, run_id)
    return data


def on_queue(engine: Engine, org_id: int, run_id: int) -> bool:
    """Whether the run is in the workers' hands: it has jobs in the queue (started with
    ``run start``, or resumed by it after embedded stages)."""
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            return False
        return conn.execute(sa.text(
            "SELECT 1 FROM procrastinate_jobs WHERE (args->>'run_id')::bigint = :run "
            "AND (args->>'org_id')::bigint = :org LIMIT 1"),
            {"run": run_id, "org": org_id}).first() is not None


def progress_of(engine: Engine, org_id: int, run_id: int) -> dict[str, Any]:
    """How far the run is: rating chunks rated (and the accounts left unbilled, with why),
    invoices by status, rendered, outbox by status, jobs by status, each stage's jobs and the
    workers running the run's jobs now (:mod:`sealbill.app.queue_stages`)."""
    from sealbill.app import queue_stages
    from sealbill.pipeline.billing.queued_rating import chunk_ids, problems_of
    from sealbill.store.delivery import outbox_runs

    with engine.begin() as conn:
        run = conn.execute(billing_runs.select().where(billing_runs.c.id == run_id)).one()
        by_status: dict[str, int] = dict(conn.execute(
            sa.select(invoices.c.status, sa.func.count()).where(
                invoices.c.organization_id == org_id, invoices.c.run_id == run_id)
            .group_by(invoices.c.status)).all())
        rendered = conn.execute(sa.select(sa.func.count()).select_from(documents.join(
            invoices, invoices.c.id == documents.c.invoice_id)).where(
            invoices.c.run_id == run_id, documents.c.kind == "pdf")).scalar_one()
        jobs: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT status::text, count(*) FROM procrastinate_jobs "
            "WHERE (args->>'run_id')::bigint = :run GROUP BY status"), {"run": run_id}).all())
        chunks = len(chunk_ids(conn, org_id, run_id))
        rated = chunks - len(chunk_ids(conn, org_id, run_id, unrated=True))
        return {"run_id": ids.encode(conn, org_id, "run", run_id), "period": run.period,
                "status": run.status,
                "rating": {"chunks": chunks, "rated": rated,
                           "not_billed": problems_of(conn, org_id, run_id)},
                "invoices": {str(k): int(v) for k, v in by_status.items()},
                "rendered": int(rendered), "outbox": outbox_runs.counts(conn, org_id, run_id),
                "jobs": {str(k): int(v) for k, v in jobs.items()},
                "stages": queue_stages.stages(conn, org_id, run_id),
                "workers": queue_stages.workers(conn, org_id, run_id)}


def progress(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """The run's progress (another organization's run, or none: not found, whatever the
    database; then, on SQLite, the problem saying the queue needs PostgreSQL)."""
    run_id = app_runs._resolve(engine, actor, org_id, ref, READ)
    _require_postgres(engine)
    return progress_of(engine, org_id, run_id)


def queue_of(engine: Engine, org_id: int, run_id: int) -> dict[str, Any] | None:
    """The progress of a run in the workers' hands (:func:`progress_of`), or None: on SQLite
    (no queue) and for a run of the embedded mode, whose pages and reports stay as they are.
    The caller has checked the actor may read the run."""
    if not is_postgres(engine) or not on_queue(engine, org_id, run_id):
        return None
    return progress_of(engine, org_id, run_id)


def queue_totals(engine: Engine, org_id: int) -> dict[int, dict[str, int]]:
    """Jobs done / total / failed of each queued run of the organization, by run row id
    (empty on SQLite or before the queue's schema exists)."""
    from sealbill.app import queue_stages

    if not is_postgres(engine):
        return {}
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            return {}
        return queue_stages.totals_by_run(conn, org_id)
