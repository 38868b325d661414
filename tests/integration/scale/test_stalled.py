"""A job left ``doing`` by a killed worker goes back to the queue, twin or no twin.

The case CI met: a sender killed mid-slice, and ``advance`` (called by another job ending)
enqueuing the same slice again under the same queueing lock and lock. Requeueing the killed
job then hit the queueing lock's unique index, every five seconds, and the run hung: the twin
waited behind the lock of a job nobody would ever finish.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.workers.periodic import requeue_stalled
from sealbill.workers.queue import defer_in, make_app
from sealbill.workers.run import init_schema

SLICE = {"org_id": 1, "run_id": 1, "part": 0, "parts": 2}


def _defer_slice(engine: Engine, url: str) -> int | None:
    with engine.begin() as conn:
        return defer_in(conn, make_app(url), "sealbill.send", lock="send:1:1:0/2",
                        queueing_lock="send:1:1:0/2", **SLICE)


def _kill_worker_of(engine: Engine, job_id: int) -> None:
    """What a SIGKILL leaves: the job ``doing``, its worker gone (no heartbeat row)."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL "
                             "WHERE id = :id"), {"id": job_id})


def _statuses(engine: Engine) -> dict[int, str]:
    with engine.begin() as conn:
        return {int(i): str(s) for i, s in conn.execute(sa.text(
            "SELECT id, status FROM procrastinate_jobs ORDER BY id"))}


def _requeue(url: str) -> int:
    app = make_app(url)

    async def go() -> int:
        async with app.open_async():
            return await requeue_stalled(app.job_manager, 30)

    # A thread of its own: a browser test earlier on this pytest worker may have left an
    # event loop running on the main thread, and asyncio.run refuses to nest in it.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, go()).result()


def test_a_killed_workers_job_goes_back_to_the_queue(pg_engine: Engine, pg_url: str) -> None:
    init_schema(pg_url)
    job = _defer_slice(pg_engine, pg_url)
    assert job is not None
    _kill_worker_of(pg_engine, job)
    assert _requeue(pg_url) == 1
    assert _statuses(pg_engine) == {job: "todo"}
    assert _requeue(pg_url) == 0  # nothing left hanging


def test_a_twin_enqueued_while_the_job_hung_is_cancelled_and_the_job_requeued(
        pg_engine: Engine, pg_url: str) -> None:
    init_schema(pg_url)
    job = _defer_slice(pg_engine, pg_url)
    assert job is not None
    _kill_worker_of(pg_engine, job)
    twin = _defer_slice(pg_engine, pg_url)  # the queueing lock only bars a second *waiting* job
    assert twin is not None and twin != job
    assert _requeue(pg_url) == 1
    assert _statuses(pg_engine) == {job: "todo", twin: "cancelled"}
    # the slice is waiting exactly once, and nothing holds its lock: a worker can take it
    assert _defer_slice(pg_engine, pg_url) is None
