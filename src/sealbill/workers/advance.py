"""What a run's state calls for next: the jobs to enqueue, read from sealbill's own tables.

Every stage job ends by calling :func:`advance` in a transaction of its own, after its work
committed. The queue therefore never holds the run's state: a job lost or run twice changes
nothing, because the next :func:`advance` reads the tables again and asks for the same jobs
(each with a queueing lock, so a job already waiting is not enqueued twice).

State -> jobs (``billing_runs.status``):
- ``drafted``   -> one ``rate`` job per rating chunk not rated yet
  (:mod:`sealbill.pipeline.billing.queued_rating`); all rated (or a run drafted by the embedded
  ``run bill``, which has no chunks) -> ``finalize``;
- ``finalized`` -> one ``render`` job per chunk of unrendered invoices; none left -> ``plan``;
- ``held``      -> nothing: the diff gate waits for an operator (approval calls advance);
- ``approved``  -> ``canary``;
- ``sending``   -> ``canary`` while a canary message is unsettled, else one ``send`` job per
  slice while any message is retryable, else ``close`` (status sent/incomplete);
- ``sent`` / ``incomplete`` -> ``verify`` (the ledger's hash chain);
- ``halted`` / ``paused`` / anything else -> nothing (an operator resumes, then advance).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import procrastinate
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.pipeline.billing.queued_rating import chunk_ids
from sealbill.pipeline.delivery.send import SendOptions
from sealbill.store.delivery import outbox as box
from sealbill.store.delivery import outbox_runs
from sealbill.store.schema import billing_runs, documents, invoices
from sealbill.workers.queue import defer_in

RENDER_CHUNK_ENV, SEND_SLICES_ENV = "SEALBILL_RENDER_CHUNK", "SEALBILL_SEND_SLICES"
SEND_CHUNK_ENV = "SEALBILL_SEND_CHUNK"


def render_chunk_size() -> int:
    return max(1, int(os.environ.get(RENDER_CHUNK_ENV, "100")))


def send_slices() -> int:
    return max(1, int(os.environ.get(SEND_SLICES_ENV, "4")))


def send_parts(conn: Connection, org_id: int, run_id: int) -> int:
    """How many send jobs share the run: at least ``SEALBILL_SEND_SLICES``, and one per
    ``SEALBILL_SEND_CHUNK`` messages (default 200), so that no send job holds a worker slot
    for long and another organization's jobs are taken in between. Counted on the whole
    outbox of the run, fixed once planned: every call names the same slices."""
    size = max(1, int(os.environ.get(SEND_CHUNK_ENV, "200")))
    total = sum(outbox_runs.counts(conn, org_id, run_id).values())
    return max(send_slices(), -(-total // size))


@dataclass(frozen=True)
class Wanted:
    """One job the state calls for (its queueing lock names the work, not the attempt)."""

    task: str
    kwargs: dict[str, Any]
    queueing_lock: str
    lock: str | None = None
    #: Procrastinate takes the highest priority first, then the oldest. Chunk i of a stage gets
    #: -i, i.e. minus the work its own run has queued before it: a small run's chunks go
    #: before a large run's later ones (round robin between runs), so one organization's
    #: large run never starves another's small one, and every job stays short (chunks).
    priority: int = 0


def _unrendered(conn: Connection, org_id: int, run_id: int) -> list[int]:
    rendered = sa.select(documents.c.invoice_id).where(documents.c.kind == "pdf")
    return [int(i) for i in conn.execute(
        sa.select(invoices.c.id).where(
            invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
            invoices.c.status.in_(("finalized", "void")), invoices.c.id.not_in(rendered))
        .order_by(invoices.c.id)).scalars()]


def unsettled(conn: Connection, org_id: int, run_id: int, *, canary: bool | None = None
              ) -> bool:
    """Whether a message of the run (of its canary) may still be sent: queued, in flight,
    or failed temporarily with attempts left."""
    limit = SendOptions().max_attempts
    return any(r.status != "failed_temporary" or r.attempts < limit
               for r in box.items(conn, org_id, run_id, statuses=box.RETRYABLE, canary=canary))


def wanted(conn: Connection, org_id: int, run_id: int) -> list[Wanted]:
    """The jobs the run's current state calls for (see the module)."""
    status = conn.execute(sa.select(billing_runs.c.status).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id)).scalar_one()
    base = {"org_id": org_id, "run_id": run_id}
    key = f"{org_id}:{run_id}"
    if status == "drafted":
        chunks = chunk_ids(conn, org_id, run_id)
        todo = set(chunk_ids(conn, org_id, run_id, unrated=True))
        if todo:
            return [Wanted("sealbill.rate", {**base, "chunk_id": c}, f"rate:{key}:{c}",
                           priority=-i) for i, c in enumerate(chunks) if c in todo]
        return [Wanted("sealbill.finalize", base, f"finalize:{key}", lock=f"finalize:{key}")]
    if status == "finalized":
        ids = _unrendered(conn, org_id, run_id)
        if not ids:
            return [Wanted("sealbill.plan", base, f"plan:{key}")]
        size = render_chunk_size()
        return [Wanted("sealbill.render", {**base, "invoice_ids": ids[i:i + size]},
                       f"render:{key}:{ids[i]}", priority=-(i // size))
                for i in range(0, len(ids), size)]
    if status == "approved":
        return [Wanted("sealbill.canary", base, f"canary:{key}", lock=f"send:{key}")]
    if status == "sending":
        if unsettled(conn, org_id, run_id, canary=True):
            return [Wanted("sealbill.canary", base, f"canary:{key}", lock=f"send:{key}")]
        if unsettled(conn, org_id, run_id):
            n = send_parts(conn, org_id, run_id)
            # lock: one sender per slice at a time, whatever retries the queue makes
            return [Wanted("sealbill.send", {**base, "part": k, "parts": n},
                           f"send:{key}:{k}/{n}", lock=f"send:{key}:{k}/{n}", priority=-k)
                    for k in range(n)]
        return [Wanted("sealbill.close", base, f"close:{key}")]
    if status in ("sent", "incomplete"):
        return [Wanted("sealbill.verify", base, f"verify:{key}")]
    return []


def advance(conn: Connection, app: procrastinate.App, org_id: int, run_id: int) -> list[str]:
    """Enqueue, in ``conn``'s transaction, what the run's state calls for; returns the tasks
    enqueued (a job already waiting under the same queueing lock is not enqueued again)."""
    done: list[str] = []
    for job in wanted(conn, org_id, run_id):
        if defer_in(conn, app, job.task, lock=job.lock, queueing_lock=job.queueing_lock,
                    priority=job.priority, **job.kwargs) is not None:
            done.append(job.task)
    return done
