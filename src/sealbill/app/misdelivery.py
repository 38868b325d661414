""""Not for me": a recipient reports an invoice mail that was not meant for them.

Every invoice mail carries a signed link naming its invoice (:mod:`sealbill.domain.report_link`:
the invoice number and an HMAC under the installation's secret key; no state, nothing to look up
until someone clicks) when ``SEALBILL_PUBLIC_URL`` says where the portal is.
Clicking shows a confirmation page; confirming records a
:data:`misdelivery_reports` row pointing at the invoice's ledger rows, and an alert (cause
``misdelivery_report``) for the operators and the ``misdelivery.reported`` webhook, in one
transaction; the page then asks the person to delete the mail and
records when they say they did. An operator opens an incident from the report
(:func:`open_incident`), scoped to the ledger messages of that invoice, aware since the report;
the ``incident.opened`` webhook is queued in the transaction that links the report to it.

Invariants: the ledger is never edited (the report refers to it); a forged or altered token is
refused like an unknown one; the confirmation page shows no data of the invoice (the person is,
by hypothesis, not entitled to it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, webhooks
from sealbill.app import ids as public_ids
from sealbill.app.context import RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, NotFound, StateError
from sealbill.domain import report_link
from sealbill.pipeline.incident import actions as incidents_pipeline
from sealbill.store.delivery import alerts as alert_store
from sealbill.store.schema import delivery_ledger, invoices, misdelivery_reports

CAUSE = "misdelivery_report"


def signed_token(engine: Engine, org_id: int, invoice_id: int, key: bytes) -> str:
    """The token of the invoice's link (the one its mail carries)."""
    with engine.begin() as conn:
        number = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == org_id, invoices.c.id == invoice_id)).scalar_one()
    return report_link.token(key, org_id, str(number))


def _invoice(engine: Engine, org_id: int, token: str, key: bytes) -> int:
    number = report_link.number_of(key, org_id, token)
    with engine.begin() as conn:
        found = None if number is None else conn.execute(sa.select(invoices.c.id).where(
            invoices.c.organization_id == org_id, invoices.c.number == number)).scalar()
    if found is None:
        raise NotFound("unknown link")
    return int(found)


def check(engine: Engine, org_id: int, token: str, key: bytes) -> None:
    """NotFound unless ``token`` is a genuine link of this organization."""
    _invoice(engine, org_id, token, key)


def report(engine: Engine, org_id: int, token: str, key: bytes, note: str = "") -> int:
    """Record the report and alert the operators; returns the report's id."""
    invoice_id = _invoice(engine, org_id, token, key)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        number = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.organization_id == org_id, invoices.c.id == invoice_id)).scalar()
        ledger = conn.execute(sa.select(delivery_ledger.c.seq, delivery_ledger.c.message_id,
                                        delivery_ledger.c.sent_at,
                                        delivery_ledger.c.recipients).where(
            delivery_ledger.c.organization_id == org_id,
            delivery_ledger.c.invoice_id == invoice_id).order_by(delivery_ledger.c.seq)).all()
        evidence = {"invoice": number, "ledger": [
            {"seq": r.seq, "message_id": r.message_id, "sent_at": r.sent_at.isoformat(),
             "recipients": [x["email"] for x in r.recipients]} for r in ledger],
            "note": note[:500]}
        alert_id = alert_store.record(
            conn, org_id, cause=CAUSE, evidence=evidence,
            message=f"a recipient of invoice {number} says it was not meant for them")
        report_id = conn.execute(sa.insert(misdelivery_reports).values(
            organization_id=org_id, invoice_id=invoice_id, ledger_seqs=[r.seq for r in ledger],
            reported_at=now, reporter_note=note[:500], alert_id=alert_id)
            .returning(misdelivery_reports.c.id)).scalar_one()
        # No data of the reporter (who is, by hypothesis, not entitled to anything here):
        # the invoice, when, and the ledger messages the report points at.
        webhooks.emit(conn, org_id, "misdelivery.reported", f"misdelivery:{report_id}",
                      {"report": int(report_id), "invoice": number, "reported_at": now,
                       "ledger_seqs": [r.seq for r in ledger], "alert": alert_id})
    return int(report_id)


def confirm_deletion(engine: Engine, org_id: int, token: str, key: bytes, report_id: int
                     ) -> None:
    invoice_id = _invoice(engine, org_id, token, key)
    with engine.begin() as conn:
        done = conn.execute(sa.update(misdelivery_reports).where(
            misdelivery_reports.c.organization_id == org_id,
            misdelivery_reports.c.id == report_id,
            misdelivery_reports.c.invoice_id == invoice_id,
            misdelivery_reports.c.deletion_confirmed_at.is_(None))
            .values(deletion_confirmed_at=datetime.now(UTC))).rowcount
    if not done:
        raise NotFound("unknown report")


def reports(engine: Engine, actor: Actor, org_id: int) -> list[dict[str, Any]]:
    actor.require("read")
    actor.require_org(org_id)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(misdelivery_reports, invoices.c.number).join(
            invoices, invoices.c.id == misdelivery_reports.c.invoice_id).where(
            misdelivery_reports.c.organization_id == org_id)
            .order_by(misdelivery_reports.c.id.desc())).all()
    return [{"id": int(r.id), "invoice": r.number, "reported_at": r.reported_at,
             "note": r.reporter_note, "deletion_confirmed_at": r.deletion_confirmed_at,
             "incident_id": r.incident_id, "alert_id": r.alert_id} for r in rows]


def open_incident(engine: Engine, actor: Actor, org_id: int, report_id: int) -> int:
    """An incident scoped to the reported invoice's ledger messages, aware since the report."""
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not open an incident")
    actor.require_org(org_id)
    with engine.begin() as conn:
        row = conn.execute(sa.select(misdelivery_reports, invoices.c.number).join(
            invoices, invoices.c.id == misdelivery_reports.c.invoice_id).where(
            misdelivery_reports.c.organization_id == org_id,
            misdelivery_reports.c.id == report_id)).first()
        if row is None:
            raise NotFound(f"report {report_id} not found")
        if row.incident_id is not None:
            raise StateError(f"incident {row.incident_id} was already opened from this report")
        message_ids = tuple(conn.execute(sa.select(delivery_ledger.c.message_id).where(
            delivery_ledger.c.organization_id == org_id,
            delivery_ledger.c.seq.in_(list(row.ledger_seqs)))).scalars())
    def opened(conn: Connection, incident_id: int) -> None:
        # In the incident's own transaction: the report's link, the webhook, the audit entry.
        conn.execute(sa.update(misdelivery_reports).where(
            misdelivery_reports.c.id == report_id).values(incident_id=incident_id))
        public = public_ids.encode(conn, org_id, "incident", incident_id)
        webhooks.emit(conn, org_id, "incident.opened", f"incident:{incident_id}",
                      {"incident_id": public, "source": "misdelivery_report",
                       "invoice": row.number, "aware_at": row.reported_at,
                       "messages": len(message_ids)})
        audit.record(conn, actor, org_id, "incident.open", "incident", public,
                     after={"from_report": report_id, "messages": list(message_ids)})

    return incidents_pipeline.open_incident(
        engine, org_id, title=f"Misdelivery reported for invoice {row.number}",
        aware_at=row.reported_at, scope=incidents_pipeline.Scope(message_ids=message_ids),
        actor=actor.name, then=opened)
