"""Which billing run delivers a credit note issued by hand (``credit-note``, ``void``).

Delivery is keyed on runs: a run's plan takes the run's finalized documents, the guard checks
that a message's document is a finalized document *of this run*, and counts, per address,
the run's documents its verified accounts explain. A credit note is therefore delivered by
the run it belongs to (``invoices.run_id``):

- a credit note a billing run issued (credits exceeding charges) belongs to that run;
- a manual credit note belongs to the corrected invoice's run while that run has no delivery
  plan yet (it is rendered, planned and sent with it); else to the organization's newest run
  without a plan (a run billed but not yet planned); else to no run yet — it *waits*, and the
  next ``run bill`` of the organization takes it into the run it opens or reuses, if that run
  has no plan yet. Its recipients are resolved when that run is planned, never stored before.

Only ``run_id`` is set here: the document itself (number, lines, XML) never changes. A credit
note's billing key is ``credit:…``, never a period's, so taking it into a run does not make
its account look billed for that period
(:func:`sealbill.store.billing.invoices.billed_account_ids`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.delivery.plans import lock_run
from sealbill.store.schema import billing_runs, delivery_plans, invoices

# A waiting credit note: finalized, of no run yet.
_WAITING = (invoices.c.kind == "credit_note", invoices.c.status == "finalized",
            invoices.c.run_id.is_(None))


def _unplanned(conn: Connection, org_id: int, run_id: int) -> bool:
    """Whether the run has no plan, holding its row until commit (``plans.lock_run``: a plan
    being built for it meanwhile either includes what this transaction adds, or is seen)."""
    lock_run(conn, org_id, run_id)
    return conn.execute(sa.select(delivery_plans.c.id).where(
        delivery_plans.c.organization_id == org_id,
        delivery_plans.c.run_id == run_id)).first() is None


def delivering_run(conn: Connection, org_id: int, corrected_run_id: int | None) -> int | None:
    """The run that will deliver a manual credit note of an invoice of ``corrected_run_id``:
    that run if it has no plan yet, else the newest run without a plan, else ``None``
    (the credit note waits for the next ``run bill``)."""
    if corrected_run_id is not None and _unplanned(conn, org_id, corrected_run_id):
        return corrected_run_id
    newest = conn.execute(
        sa.select(billing_runs.c.id)
        .outerjoin(delivery_plans, delivery_plans.c.run_id == billing_runs.c.id)
        .where(billing_runs.c.organization_id == org_id, delivery_plans.c.id.is_(None))
        .order_by(billing_runs.c.id.desc()).limit(1)).scalar()
    if newest is None or not _unplanned(conn, org_id, int(newest)):
        return None  # (planned since it was read: wait for the next run)
    return int(newest)


def waiting_numbers(conn: Connection, org_id: int) -> list[str]:
    """The numbers of the credit notes waiting for a run, oldest first."""
    return [str(n) for n in conn.execute(
        sa.select(invoices.c.number).where(invoices.c.organization_id == org_id, *_WAITING)
        .order_by(invoices.c.id)).scalars()]


def would_take(conn: Connection, org_id: int, period: str) -> list[str]:
    """What :func:`take_waiting` would take into the run of ``period`` (for a dry run)."""
    run_id = conn.execute(sa.select(billing_runs.c.id).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.period == period)).scalar()
    if run_id is not None and not _unplanned(conn, org_id, int(run_id)):
        return []
    return waiting_numbers(conn, org_id)


def take_waiting(conn: Connection, org_id: int, run_id: int) -> list[str]:
    """Give the waiting credit notes to ``run_id`` (if it has no plan yet): their numbers."""
    if not _unplanned(conn, org_id, run_id):
        return []
    numbers = waiting_numbers(conn, org_id)
    if numbers:
        conn.execute(sa.update(invoices).where(invoices.c.organization_id == org_id,
                                               *_WAITING).values(run_id=run_id))
    return numbers
