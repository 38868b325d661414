"""``sealbill worker``: apply Procrastinate's schema if missing, then run a worker.

Any number of workers, on any machines that reach the database, share the queue: each takes
the next job with ``SELECT ... FOR UPDATE SKIP LOCKED`` (Procrastinate). A worker sends a
heartbeat; one that stops (SIGKILL, a lost machine) has its running jobs requeued by the
``stalled`` periodic job of any other worker.
"""

from __future__ import annotations

import os

import psycopg

from sealbill.workers.queue import DB_ENV, QUEUE, conninfo, make_app, require_postgres


def schema_applied(url: str) -> bool:
    with psycopg.connect(conninfo(url)) as conn:
        return conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone() \
            not in (None, (None,))


def init_schema(url: str) -> bool:
    """Apply Procrastinate's tables to the database once; False if they were there."""
    require_postgres(url)
    if schema_applied(url):
        return False
    app = make_app(url)
    with app.open():
        # Two workers starting at once: the second one's CREATE fails; it then finds it there.
        try:
            app.schema_manager.apply_schema()
        except Exception:
            if not schema_applied(url):
                raise
    return True


def run_worker(url: str, concurrency: int, *, name: str | None = None,
               heartbeat: float = 2.0) -> None:
    """Run a worker until interrupted (SIGINT/SIGTERM finish the running jobs first)."""
    require_postgres(url)
    os.environ[DB_ENV] = url  # the tasks' engine (sealbill.workers.queue.engine)
    init_schema(url)
    make_app(url).run_worker(queues=[QUEUE], concurrency=concurrency, name=name,
                             update_heartbeat_interval=heartbeat,
                             install_signal_handlers=True)
