"""Delivery plans and envelopes in the database, and the facts the plan policy reads.

Invariants:
- one plan per run (unique ``run_id``); one envelope per finalized document of the run —
  invoice or credit note (``store/billing/credit_delivery.py``: which run a credit note is in); each
  envelope gets exactly one outbox row whose Message-ID derives from the envelope id;
- envelope recipients are written from
:func:`~sealbill.store.parties.records.verified_billing_recipients`
  only (contact id + address), never from another column or a free-form string;
- a replan rebuilds only envelopes whose message never left (outbox ``queued`` or ``held``);
  an envelope whose message is ``sending``, ``sent`` or ``failed_temporary`` is kept as is;
- every read filters on ``organization_id``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.delivery_plan import PlannedEnvelope
from sealbill.store import stage_events
from sealbill.store.db import ids_as_one, inserted_id, not_indexed
from sealbill.store.schema import (
    accounts,
    billing_runs,
    contact_events,
    delivery_envelopes,
    delivery_plans,
    documents,
    invoices,
    outbox,
)

TEXT_KINDS = ("txt", "text")  # the render stage stores the plain-text body as "txt"
NEVER_LEFT = ("queued", "held", "failed_permanent")  # failed_permanent: no customer received it
_DIGESTED = {"pdf": ("pdf",), "xml": ("xml",), "html": ("html",),
             "text": TEXT_KINDS}  # the documents a plan reads digests of, by kind


def run_row(conn: Connection, org_id: int, run_id: int) -> Mapping[str, Any]:
    row = conn.execute(sa.select(billing_runs).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id)).first()
    if row is None:
        raise LookupError(f"billing run {run_id} not found")
    return dict(row._mapping)


def lock_run(conn: Connection, org_id: int, run_id: int) -> None:
    """Hold the run's row until commit (PostgreSQL ``FOR UPDATE``; SQLite has one writer):
    a credit note given to the run (``store/billing/credit_delivery.py``) is either in its plan or
    sees the plan and goes to another run."""
    conn.execute(sa.select(billing_runs.c.id).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id
    ).with_for_update()).first()


def set_run_status(conn: Connection, org_id: int, run_id: int, status: str,
                   halted_reason: str | None = None) -> None:
    conn.execute(sa.update(billing_runs).where(
        billing_runs.c.organization_id == org_id, billing_runs.c.id == run_id
    ).values(status=status, halted_reason=halted_reason))
    stage_events.publish(conn, org_id, stage_events.RUN_STATUS,
                         {"run_id": run_id, "status": status, "reason": halted_reason})


def run_invoices(conn: Connection, org_id: int, run_id: int, *, after: int = 0,
                 limit: int | None = None) -> list[Mapping[str, Any]]:
    """The run's finalized invoices (what must be delivered), with their account reference:
    those with an id above ``after``, ``limit`` of them (all without), in id order."""
    query = (
        sa.select(invoices.c.id, invoices.c.number, invoices.c.account_id,
                  invoices.c.total_incl_minor, invoices.c.currency,
                  accounts.c.reference, accounts.c.is_internal_test)
        .join(accounts, sa.and_(accounts.c.id == invoices.c.account_id,
                                accounts.c.organization_id == org_id))
        .where(invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
               invoices.c.status == "finalized", invoices.c.id > after)
        .order_by(invoices.c.id))
    rows = conn.execute(query if limit is None else query.limit(limit)).mappings().all()
    return cast("list[Mapping[str, Any]]", rows)


def document_digests(conn: Connection, org_id: int,
                     invoice_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """invoice id -> kind (pdf, xml, html, text) -> sha256."""
    out: dict[int, dict[str, str]] = {}
    # one row per invoice: its digest of each kind (None where the kind is missing)
    per_kind = [sa.func.max(sa.case((documents.c.kind.in_(kinds), documents.c.sha256)))
                for kinds in _DIGESTED.values()]
    rows = conn.execute(sa.select(documents.c.invoice_id, *per_kind)
                        .where(not_indexed(documents.c.organization_id) == org_id,
                               ids_as_one(conn, documents.c.invoice_id, invoice_ids))
                        .group_by(documents.c.invoice_id))
    for invoice_id, *digests in rows:
        out[invoice_id] = {kind: sha for kind, sha in zip(_DIGESTED, digests, strict=True)
                           if sha is not None}
    return out


def change_evidence(conn: Connection, org_id: int, pairs: Iterable[tuple[int, int]]
                    ) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """For each (account, contact): the contact's history that concerns that account or its
    address (added, address changed, linked, verified, revoked...), oldest first."""
    pairs = set(pairs)
    contact_ids = sorted({cid for _, cid in pairs})
    by_contact: dict[int, list[Any]] = {}
    for start in range(0, len(contact_ids), 500):
        chunk = contact_ids[start:start + 500]
        for row in conn.execute(sa.select(contact_events).where(
                not_indexed(contact_events.c.organization_id) == org_id,
                contact_events.c.contact_id.in_(chunk)).order_by(contact_events.c.id)):
            by_contact.setdefault(int(row.contact_id), []).append(row)
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for account_id, contact_id in pairs:
        out[(account_id, contact_id)] = [
            {"contact_id": contact_id, "event": r.event, "actor": r.actor, "method": r.method,
             "reason": r.reason, "old_value": r.old_value, "new_value": r.new_value,
             "at": r.at.isoformat() if r.at else None}
            for r in by_contact.get(contact_id, [])
            if r.account_id is None or int(r.account_id) == account_id]
    return out


def set_archive(conn: Connection, org_id: int, plan_id: int, archive: str | None) -> None:
    conn.execute(sa.update(delivery_plans).where(
        delivery_plans.c.organization_id == org_id, delivery_plans.c.id == plan_id
    ).values(archive_email=archive))


def plan_archive(conn: Connection, org_id: int, plan_id: int) -> str | None:
    return conn.execute(sa.select(delivery_plans.c.archive_email).where(
        delivery_plans.c.organization_id == org_id, delivery_plans.c.id == plan_id)).scalar()


def approve_envelopes(conn: Connection, org_id: int, plan_id: int,
                      digests: Mapping[int, str]) -> None:
    """Record, per envelope, the digest of the recipients the approver saw (one statement,
    executed for every envelope given)."""
    if not digests:
        return
    conn.execute(sa.update(delivery_envelopes).where(
        delivery_envelopes.c.organization_id == org_id,
        delivery_envelopes.c.plan_id == plan_id,
        delivery_envelopes.c.id == sa.bindparam("envelope_id")
    ).values(approved_sha256=sa.bindparam("digest")),
        [{"envelope_id": e, "digest": d} for e, d in digests.items()])


def plan_row(conn: Connection, org_id: int, run_id: int) -> Mapping[str, Any] | None:
    row = conn.execute(sa.select(delivery_plans).where(
        delivery_plans.c.organization_id == org_id, delivery_plans.c.run_id == run_id)).first()
    return None if row is None else dict(row._mapping)


def previous_plan(conn: Connection, org_id: int, period: str
                  ) -> tuple[int, list[PlannedEnvelope]] | None:
    """The plan of the organization's latest run before ``period``, if any."""
    plan_id = previous_plan_id(conn, org_id, period)
    if plan_id is None:
        return None
    return plan_id, planned_envelopes(conn, org_id, plan_id)


def previous_plan_id(conn: Connection, org_id: int, period: str) -> int | None:
    """The id of the plan of the organization's latest run before ``period``, if any."""
    row = conn.execute(
        sa.select(delivery_plans.c.id, delivery_plans.c.run_id)
        .join(billing_runs, billing_runs.c.id == delivery_plans.c.run_id)
        .where(delivery_plans.c.organization_id == org_id, billing_runs.c.period < period)
        .order_by(billing_runs.c.period.desc()).limit(1)).first()
    return None if row is None else int(row.id)


def envelope_rows(conn: Connection, org_id: int, plan_id: int) -> list[Mapping[str, Any]]:
    rows = conn.execute(
        sa.select(delivery_envelopes, invoices.c.number, invoices.c.kind, accounts.c.reference,
                  outbox.c.status.label("outbox_status"), outbox.c.message_id)
        .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
        .join(accounts, accounts.c.id == delivery_envelopes.c.account_id)
        .outerjoin(outbox, outbox.c.envelope_id == delivery_envelopes.c.id)
        .where(delivery_envelopes.c.organization_id == org_id,
               delivery_envelopes.c.plan_id == plan_id)
        .order_by(delivery_envelopes.c.id))
    return [dict(row._mapping) for row in rows]


def planned_envelopes(conn: Connection, org_id: int, plan_id: int) -> list[PlannedEnvelope]:
    return [to_planned(row) for row in envelope_rows(conn, org_id, plan_id)]


def to_planned(row: Mapping[str, Any]) -> PlannedEnvelope:
    recipients = tuple((int(r["contact_id"]), str(r["email"])) for r in row["recipients"])
    return PlannedEnvelope(int(row["invoice_id"]), str(row["number"]), int(row["account_id"]),
                           str(row["reference"]), recipients, int(row["amount_minor"]),
                           str(row["currency"]), str(row.get("kind") or "invoice"))


def create_plan(conn: Connection, org_id: int, run_id: int, previous_plan_id: int | None,
                actor: str) -> int:
    return inserted_id(conn.execute(sa.insert(delivery_plans).values(
        organization_id=org_id, run_id=run_id, previous_plan_id=previous_plan_id,
        verdict="hold", report={}, created_by=actor, created_at=datetime.now(UTC),
    )))


def set_verdict(conn: Connection, org_id: int, plan_id: int, verdict: str,
                report: Mapping[str, Any]) -> None:
    conn.execute(sa.update(delivery_plans).where(
        delivery_plans.c.organization_id == org_id, delivery_plans.c.id == plan_id
    ).values(verdict=verdict, report=dict(report), approved_by=None, approved_reason=None,
             approved_at=None, approved_digest=None))


def approve(conn: Connection, org_id: int, plan_id: int, actor: str, reason: str,
            digest: str | None = None) -> None:
    conn.execute(sa.update(delivery_plans).where(
        delivery_plans.c.organization_id == org_id, delivery_plans.c.id == plan_id
    ).values(approved_by=actor, approved_reason=reason, approved_at=datetime.now(UTC),
             approved_digest=digest))


def drop_unsent(conn: Connection, org_id: int, plan_id: int) -> array[int]:
    """Delete the envelopes (and outbox rows) whose message never left; returns their
    invoice ids, ascending, packed (to be planned again). Works 500 envelopes at a time."""
    dropped: array[int] = array("q")
    while True:
        rows = conn.execute(
            sa.select(delivery_envelopes.c.id, delivery_envelopes.c.invoice_id, outbox.c.id)
            .outerjoin(outbox, outbox.c.envelope_id == delivery_envelopes.c.id)
            .where(delivery_envelopes.c.organization_id == org_id,
                   delivery_envelopes.c.plan_id == plan_id,
                   sa.or_(outbox.c.id.is_(None), outbox.c.status.in_(NEVER_LEFT)))
            .order_by(delivery_envelopes.c.id).limit(500)).all()
        if not rows:
            return array("q", sorted(dropped))
        outbox_ids = [int(o) for _, _, o in rows if o is not None]
        if outbox_ids:
            conn.execute(sa.delete(outbox).where(outbox.c.id.in_(outbox_ids)))
        conn.execute(sa.delete(delivery_envelopes).where(
            delivery_envelopes.c.id.in_([int(e) for e, _, _ in rows])))
        dropped.extend(int(i) for _, i, _ in rows)
