"""A queued run's progress stage by stage, read from Procrastinate's tables (PostgreSQL).

Invariants:
- read only: nothing here writes, so the console, the CLI and the API may poll it freely;
- a stage's figures are its jobs for the run (``args.run_id`` and ``args.org_id``): ``total``
  every job ever enqueued, ``done`` those succeeded, ``waiting`` / ``running`` / ``failed``
  by status, ``retried`` the jobs deferred again after a failure (an event of the queue's);
- a stage with no job yet is ``waiting`` (its jobs are enqueued when the stage before it ends,
  :mod:`sealbill.workers.advance`); ``done`` only when every job of it succeeded;
- the workers shown are those running a job of the run now, with their last heartbeat.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: (stage, the tasks whose jobs make it), in the order of the cycle. ``close`` (the run's
#: status once every message settled) belongs to the verification that follows it.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rating", ("sealbill.rate",)),
    ("finalization", ("sealbill.finalize",)),
    ("rendering", ("sealbill.render",)),
    ("plan", ("sealbill.plan",)),
    ("canary", ("sealbill.canary",)),
    ("sending", ("sealbill.send",)),
    ("verification", ("sealbill.close", "sealbill.verify")),
)

_OF_RUN = ("(j.args->>'run_id')::bigint = :run AND (j.args->>'org_id')::bigint = :org")


def stages(conn: Connection, org_id: int, run_id: int) -> list[dict[str, Any]]:
    """Each stage of the run with its jobs counted (see the module), in the cycle's order."""
    key = {"run": run_id, "org": org_id}
    counts: dict[tuple[str, str], int] = {
        (str(t), str(s)): int(n) for t, s, n in conn.execute(sa.text(
            f"SELECT j.task_name, j.status::text, count(*) FROM procrastinate_jobs j "
            f"WHERE {_OF_RUN} GROUP BY 1, 2"), key)}
    retried: dict[str, int] = {str(t): int(n) for t, n in conn.execute(sa.text(
        f"SELECT j.task_name, count(DISTINCT j.id) FROM procrastinate_jobs j "
        f"JOIN procrastinate_events e ON e.job_id = j.id "
        f"AND e.type IN ('deferred_for_retry', 'retried') WHERE {_OF_RUN} GROUP BY 1"), key)}
    out = []
    for stage, tasks in STAGES:
        def by(*states: str, tasks: tuple[str, ...] = tasks) -> int:
            return sum(n for (t, s), n in counts.items() if t in tasks and s in states)

        total = sum(n for (t, _), n in counts.items() if t in tasks)
        row = {"stage": stage, "total": total, "done": by("succeeded"),
               "waiting": by("todo"), "running": by("doing"),
               "failed": by("failed", "aborted"), "cancelled": by("cancelled"),
               "retried": sum(retried.get(t, 0) for t in tasks)}
        row["state"] = _state(row)
        out.append(row)
    return out


def _state(row: dict[str, Any]) -> str:
    if row["running"]:
        return "running"
    if row["failed"] and not row["waiting"]:
        return "failed"
    if row["total"] and row["done"] + row["cancelled"] == row["total"]:
        return "done"
    return "waiting"


def workers(conn: Connection, org_id: int, run_id: int) -> list[dict[str, Any]]:
    """The queue workers running a job of the run now: id, jobs running, seconds since their
    last heartbeat (a worker silent for long is presumed dead; its jobs are requeued by the
    ``stalled`` periodic job)."""
    rows = conn.execute(sa.text(
        f"SELECT w.id, count(j.id), extract(epoch FROM now() - w.last_heartbeat) "
        f"FROM procrastinate_jobs j JOIN procrastinate_workers w ON w.id = j.worker_id "
        f"WHERE j.status = 'doing' AND {_OF_RUN} GROUP BY w.id, w.last_heartbeat "
        f"ORDER BY w.id"), {"run": run_id, "org": org_id}).all()
    return [{"worker": int(w), "running": int(n), "heartbeat_seconds_ago": round(float(s), 1)}
            for w, n, s in rows]


def totals_by_run(conn: Connection, org_id: int) -> dict[int, dict[str, int]]:
    """Every queued run of the organization: its jobs done, total and failed (the runs
    list's one-line summary)."""
    out: dict[int, dict[str, int]] = {}
    for run, status, n in conn.execute(sa.text(
            "SELECT (j.args->>'run_id')::bigint, j.status::text, count(*) "
            "FROM procrastinate_jobs j WHERE (j.args->>'org_id')::bigint = :org "
            "AND j.args->>'run_id' IS NOT NULL GROUP BY 1, 2"), {"org": org_id}):
        row = out.setdefault(int(run), {"done": 0, "total": 0, "failed": 0})
        row["total"] += int(n)
        row["done"] += int(n) if status == "succeeded" else 0
        row["failed"] += int(n) if status in ("failed", "aborted") else 0
    return out
