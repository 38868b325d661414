"""The Procrastinate app, the worker's database engine, and deferring inside our transaction.

Invariants:
- the queue lives in the sealbill PostgreSQL database itself (Procrastinate's tables beside
  ours): nothing else to operate, and a job can be enqueued in the very transaction that makes
  the state change calling for it (:func:`defer_in`);
- on SQLite there is no queue: :func:`require_postgres` refuses with a message saying so.
"""

from __future__ import annotations

import os
from typing import Any, cast

import procrastinate
import psycopg
from procrastinate.jobs import Job
from procrastinate.sync_psycopg_connector import SyncPsycopgConnector
from procrastinate.testing import InMemoryConnector
from sqlalchemy.engine import Connection, Engine

from sealbill.store.db import create_engine

QUEUE = "sealbill"
DB_ENV = "SEALBILL_DATABASE_URL"


class NeedsPostgres(RuntimeError):
    """The distributed path was asked for on a database that is not PostgreSQL."""


def require_postgres(url: str) -> None:
    if not url.startswith(("postgresql", "postgres:")):
        raise NeedsPostgres(
            "the distributed cycle (sealbill worker, run start) needs PostgreSQL: its job "
            "queue lives in the database; on SQLite run the cycle in one command instead "
            "(sealbill run bill / finalize / render / plan / send)")


def conninfo(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a libpq connection string."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else url


_engines: dict[str, Engine] = {}


def database_url() -> str:
    url = os.environ.get(DB_ENV)
    if not url:
        raise NeedsPostgres(f"{DB_ENV} is not set: workers need the database URL")
    return url


def engine() -> Engine:
    """The worker process's engine (one per URL, created on first use)."""
    url = database_url()
    if url not in _engines:
        _engines[url] = create_engine(url)
    return _engines[url]


#: The app the tasks are declared on (``@tasks.task``); :func:`make_app` binds it to the
#: database. One database per process: the tasks (and the periodic deferrer) refer to it.
tasks = procrastinate.App(connector=InMemoryConnector())
_bound: list[str] = []


def make_app(url: str) -> procrastinate.App:
    """The app with every sealbill task registered, on a psycopg 3 connector to ``url``
    (bound once per URL; binding it again to the same URL keeps the open connector)."""
    require_postgres(url)
    from sealbill.workers import periodic, stages  # noqa: F401 - they declare the tasks

    target = conninfo(url)
    if _bound != [target]:
        # What App.replace_connector does, kept: the tasks keep pointing at this app.
        connector = procrastinate.PsycopgConnector(conninfo=target)
        tasks.connector = connector
        tasks.job_manager.connector = connector
        _bound[:] = [target]
    return tasks


def defer_in(conn: Connection, app: procrastinate.App, task_name: str, *,
             lock: str | None = None, queueing_lock: str | None = None, priority: int = 0,
             **kwargs: Any) -> int | None:
    """Enqueue ``task_name(**kwargs)`` on ``conn``'s own psycopg connection, so the job exists
    if and only if the caller's transaction commits.

    ``queueing_lock``: at most one such job waiting; a second one asked for while it waits is
    dropped (returns None) — the waiting job will do the work. ``lock``: jobs sharing it never
    run at the same time (one sender per slice of a run)."""
    job: Job = app.configure_task(task_name, allow_unknown=False, lock=lock,
                                  queueing_lock=queueing_lock, queue=QUEUE,
                                  priority=priority
                                  ).make_new_job(**kwargs)
    raw = cast(psycopg.Connection[Any], conn.connection.driver_connection)
    # Procrastinate's own query (its ``procrastinate_defer_jobs_v1`` function), run on our
    # connection by its synchronous psycopg connector: a worker's app holds the asynchronous
    # one, which cannot use a caller's synchronous connection.
    query = app.job_manager._defer_jobs_query_kwargs(jobs=[job])
    try:
        # A savepoint: a refused duplicate (queueing lock) must not abort the caller's work.
        with raw.transaction():
            rows = _SYNC.execute_query_all_with_connection(raw, **query)
    except procrastinate.exceptions.UniqueViolation:
        return None
    return int(rows[0]["id"])


_SYNC = SyncPsycopgConnector()
