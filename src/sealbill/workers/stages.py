"""The stage jobs: each calls the pipeline function the embedded CLI calls, on a run or a chunk.

Idempotency, job by job (any job may run twice: a retry after its worker died mid-way):
- ``rate``: one job per chunk of accounts (:func:`bill_chunk`): the chunk's drafts and its
  "rated" mark commit together under the chunk's row lock, so a rerun writes nothing, and the
  unique billing key refuses a second invoice for an account whatever happens;
- ``finalize``: one job per run (queueing lock, and a ``lock`` so two never run at once),
  only once every chunk is rated; numbering in the pipeline's transactions under the series
  lock, so numbers stay gapless and sequential per series; a rerun finds no draft and numbers
  nothing;
- ``render``: a chunk's invoices still without documents; the file store accepts identical
  bytes again and refuses different ones, and the rows are written after the files;
- ``plan``: :func:`plan_run` returns the existing plan when there is one;
- ``canary`` / ``send``: the outbox. A row left in ``sending`` by a dead worker is sent again
  with its Message-ID (the only duplicate possible, identical), everything else once; the guard
  runs before every message in whichever worker sends it, and reads the kill switch and the
  run's status from the database in the claiming transaction;
- ``close`` / ``verify``: a status update guarded by the current status, and a read.

Each job that completes its stage for the whole run calls :func:`advance` in a new transaction
(it reads the tables and enqueues what they call for). A job that only completes its own chunk
does not: the last chunk to finish does (each checks after its own commit, so the last
committer sees every chunk done; two seeing it at once enqueue one job, by queueing lock).
"""

from __future__ import annotations

import logging
import os
import signal

import procrastinate

from sealbill import settings
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.queued_rating import bill_chunk, chunk_ids
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.delivery.plan import plan_run
from sealbill.store.delivery import ledger
from sealbill.store.parties import records as parties
from sealbill.workers import advance as adv
from sealbill.workers import send_jobs
from sealbill.workers.queue import database_url, engine, make_app, tasks

log = logging.getLogger(__name__)
KILL_RENDER_ENV = "SEALBILL_TEST_KILL_RENDER"  # test hook: "<n>" -> SIGKILL mid n-th render job
_render_jobs = 0


def _app() -> procrastinate.App:
    return make_app(database_url())


def _advance(org_id: int, run_id: int) -> None:
    with engine().begin() as conn:
        enqueued = adv.advance(conn, _app(), org_id, run_id)
    log.info("run advanced", extra={"fields": {"run_id": run_id, "enqueued": enqueued}})


@tasks.task(name="sealbill.rate", queue="sealbill", retry=2)
def rate(org_id: int, run_id: int, chunk_id: int) -> None:
    bill_chunk(engine(), org_id, chunk_id)
    with engine().begin() as conn:
        last = not chunk_ids(conn, org_id, run_id, unrated=True)
    if last:
        _advance(org_id, run_id)


@tasks.task(name="sealbill.finalize", queue="sealbill", retry=2)
def finalize(org_id: int, run_id: int) -> None:
    with engine().begin() as conn:
        if chunk_ids(conn, org_id, run_id, unrated=True):
            return  # not every chunk rated: the last one to be enqueues this job again
    finalize_run(engine(), org_id, run_id)
    _advance(org_id, run_id)


@tasks.task(name="sealbill.render", queue="sealbill", retry=2)
def render(org_id: int, run_id: int, invoice_ids: list[int]) -> None:
    global _render_jobs
    _render_jobs += 1
    kill_at = os.environ.get(KILL_RENDER_ENV)
    files = settings.files_dir(None)
    half = max(1, len(invoice_ids) // 2)
    render_run(engine(), org_id, run_id, files, invoice_ids=invoice_ids[:half], workers=1)
    if kill_at and int(kill_at) == _render_jobs:
        os.kill(os.getpid(), signal.SIGKILL)  # half the chunk rendered, the rest not
    render_run(engine(), org_id, run_id, files, invoice_ids=invoice_ids[half:], workers=1)
    with engine().begin() as conn:
        last = not adv._unrendered(conn, org_id, run_id)
    if last:
        _advance(org_id, run_id)


@tasks.task(name="sealbill.plan", queue="sealbill", retry=2)
def plan(org_id: int, run_id: int) -> None:
    plan_run(engine(), org_id, run_id, actor="worker")
    _advance(org_id, run_id)


@tasks.task(name="sealbill.canary", queue="sealbill", retry=2)
def canary(org_id: int, run_id: int) -> None:
    if send_jobs.canary(engine(), org_id, run_id) is None:
        _advance(org_id, run_id)


@tasks.task(name="sealbill.send", queue="sealbill", retry=2)
def send(org_id: int, run_id: int, part: int, parts: int) -> None:
    stopped = send_jobs.send_part(engine(), org_id, run_id, part, parts)
    if stopped is not None:
        return  # paused / halted / relay failing: an operator resumes, then `run start`
    with engine().begin() as conn:
        last = not adv.unsettled(conn, org_id, run_id)
    if last:
        _advance(org_id, run_id)


@tasks.task(name="sealbill.close", queue="sealbill", retry=2)
def close(org_id: int, run_id: int) -> None:
    send_jobs.close(engine(), org_id, run_id)
    _advance(org_id, run_id)


@tasks.task(name="sealbill.verify", queue="sealbill", retry=2)
def verify(org_id: int, run_id: int) -> None:
    with engine().begin() as conn:
        report = ledger.verify(conn, org_id)
        slug = parties.organization(conn, org_id)["slug"]
    level = logging.INFO if report.ok else logging.ERROR
    log.log(level, "ledger verified after run", extra={"fields": {
        "org": slug, "run_id": run_id, "ok": report.ok}})
    if not report.ok:
        raise RuntimeError(f"ledger of {slug} does not verify after run {run_id}")
