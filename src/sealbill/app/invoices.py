"""Invoices and credit notes: list with filters (cursor pages, no silent cap), show, download.

Invariant: reading never changes an invoice; a download returns the stored PDF only when its
bytes still match the SHA-256 recorded at rendering (the file store is immutable).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.audit import page
from sealbill.app.context import CATALOG_WRITE, READ, Actor
from sealbill.app.errors import AppError, NotFound, Problem, StateError
from sealbill.documents import docstore
from sealbill.store import queries
from sealbill.store.billing.invoices import InvoiceStateError, load_invoice
from sealbill.store.schema import accounts, billing_runs, documents, invoices, organizations

MAX_LIMIT = 1000


def invoice_row_id(conn: Connection, org_id: int, ref: str) -> int:
    """An invoice by public id (``inv_…``) or number."""
    if ref.startswith("inv_"):
        row_id = ids.decode(conn, org_id, "invoice", ref)
        found = conn.execute(sa.select(invoices.c.id).where(
            invoices.c.organization_id == org_id, invoices.c.id == row_id)).scalar()
        if found is None:
            raise NotFound(f"invoice {ref!r} not found")
        return int(found)
    try:
        return queries.invoice_id_by_number(conn, org_id, ref)
    except LookupError:
        raise NotFound(f"invoice {ref!r} not found") from None


def _summary(conn: Connection, org_id: int, row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["id"] = ids.encode(conn, org_id, "invoice", int(data.pop("id")))
    run_id = data.pop("run_id")
    data["run_id"] = None if run_id is None else ids.encode(conn, org_id, "run", int(run_id))
    return data


def list_invoices(engine: Engine, actor: Actor, org_id: int, *, run: str | None = None,
                  status: str | None = None, kind: str | None = None,
                  account: str | None = None, limit: int = 100, cursor: str | None = None
                  ) -> dict[str, Any]:
    """A page of invoices in creation order and the cursor of the next page (None at the
    end): every invoice is reachable, however many there are."""
    actor.require(READ)
    actor.require_org(org_id)
    limit = max(1, min(limit, MAX_LIMIT))
    with engine.begin() as conn:
        query = (sa.select(invoices.c.id, invoices.c.number, invoices.c.kind,
                           invoices.c.status, invoices.c.account_reference,
                           accounts.c.name.label("account_name"), invoices.c.issue_date,
                           invoices.c.due_date, invoices.c.currency,
                           invoices.c.total_excl_minor, invoices.c.tax_total_minor,
                           invoices.c.total_incl_minor, invoices.c.run_id)
                 .join(accounts, accounts.c.id == invoices.c.account_id)
                 .where(invoices.c.organization_id == org_id))
        if run:
            query = query.where(invoices.c.run_id == run_row_id(conn, org_id, run))
        if status:
            query = query.where(invoices.c.status == status)
        if kind:
            query = query.where(invoices.c.kind == kind)
        if account:
            query = query.where(invoices.c.account_reference == account)
        if cursor:
            query = query.where(invoices.c.id > ids.decode(conn, org_id, "invoice", cursor))
        rows = conn.execute(query.order_by(invoices.c.id).limit(limit + 1)).all()
        items = [_summary(conn, org_id, r) for r in rows[:limit]]
    return page(items, limit, len(rows) > limit)


def run_row_id(conn: Connection, org_id: int, ref: str) -> int:
    """A run by public id (``run_…``), id or period (``2026-11``)."""
    if ref.startswith("run_"):
        row_id = ids.decode(conn, org_id, "run", ref)
        found = conn.execute(sa.select(billing_runs.c.id).where(
            billing_runs.c.organization_id == org_id, billing_runs.c.id == row_id)).scalar()
        if found is None:
            raise NotFound(f"run {ref!r} not found")
        return int(found)
    try:
        return int(queries.run_by_ref(conn, org_id, ref)["id"])
    except (LookupError, ValueError):
        raise NotFound(f"run {ref!r} not found") from None


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        row_id = invoice_row_id(conn, org_id, ref)
        try:
            data = asdict(load_invoice(conn, org_id, row_id))
        except InvoiceStateError as exc:
            raise StateError(str(exc)) from None
        data["public_id"] = ids.encode(conn, org_id, "invoice", row_id)
        # What decided the VAT (scheme, country, evidence, how the VAT id was checked).
        data["tax_facts"] = conn.execute(sa.select(invoices.c.tax_facts).where(
            invoices.c.id == row_id)).scalar_one()
        return data


def download(engine: Engine, actor: Actor, org_id: int, ref: str, kind: str = "pdf"
             ) -> tuple[str, bytes]:
    """(file name, bytes) of the rendered document (``pdf`` or ``xml``)."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        row_id = invoice_row_id(conn, org_id, ref)
        number = conn.execute(sa.select(invoices.c.number).where(
            invoices.c.id == row_id)).scalar()
        doc = conn.execute(sa.select(documents).where(
            documents.c.organization_id == org_id, documents.c.invoice_id == row_id,
            documents.c.kind == kind)).first()
    if doc is None:
        raise StateError(f"invoice {ref!r} has no {kind} yet (sealbill documents render)")
    try:
        with engine.begin() as conn:
            data = docstore.read(conn, str(doc.path), str(doc.sha256))
    except docstore.DocumentDigestError:
        raise AppError(f"the stored {kind} of {number} does not match its recorded "
                       "digest") from None
    return f"{number}.{kind}", data


def _number(conn: Connection, org_id: int, ref: str) -> tuple[int, str, str]:
    row_id = invoice_row_id(conn, org_id, ref)
    row = conn.execute(sa.select(invoices.c.number, invoices.c.currency).where(
        invoices.c.id == row_id)).one()
    if row.number is None:
        raise StateError(f"invoice {ref!r} is a draft: finalize it first")
    return row_id, str(row.number), str(row.currency)


def credit_note(engine: Engine, actor: Actor, org_id: int, ref: str, *, reason: str,
                amount: str | None = None) -> dict[str, Any]:
    """A numbered credit note against a finalized invoice, in full or for ``amount`` (major
    units, excluding VAT); the note and its audit entry commit together."""
    from sealbill.app import audit
    from sealbill.app.context import RUNS_WRITE
    from sealbill.app.errors import Invalid, Problem
    from sealbill.domain.money import Money, MoneyError, parse_decimal
    from sealbill.pipeline.billing.finalize import credit_note_in

    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("credit note: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        row_id, number, currency = _number(conn, org_id, ref)
        try:
            minor = None if amount is None else Money.from_decimal(
                parse_decimal(amount, field="amount"), currency).amount_minor
        except MoneyError as exc:
            raise Invalid("credit note: 1 problem(s)", [Problem("amount", str(exc))]) from None
        try:
            credit_id, credit_number = credit_note_in(
                conn, org_id, number, reason=reason, amount_minor=minor,
                issue_date=datetime.now(UTC).date())
        except (InvoiceStateError, ValueError, LookupError) as exc:
            raise StateError(str(exc)) from None
        public = ids.encode(conn, org_id, "invoice", credit_id)
        audit.record(conn, actor, org_id, "invoice.credit_note", "invoice",
                     ids.encode(conn, org_id, "invoice", row_id),
                     after={"credit_note": credit_number, "credit_note_id": public,
                            "amount_minor": minor, "reason": reason})
        delivery = delivered_by(conn, org_id, credit_id)
    return {"id": public, "number": credit_number, "corrects": number, "delivery": delivery}


def delivered_by(conn: Connection, org_id: int, credit_id: int) -> dict[str, Any]:
    """The run that mails a credit note (``store/billing/credit_delivery.py``): ``{"run_id",
    "period"}``, both ``None`` while it waits for the next ``run bill``."""
    row = conn.execute(sa.select(billing_runs.c.id, billing_runs.c.period)
                       .join(invoices, invoices.c.run_id == billing_runs.c.id)
                       .where(invoices.c.organization_id == org_id,
                              invoices.c.id == credit_id)).first()
    if row is None:
        return {"run_id": None, "period": None}
    return {"run_id": ids.encode(conn, org_id, "run", int(row.id)), "period": str(row.period)}


def void(engine: Engine, actor: Actor, org_id: int, ref: str, *, reason: str
         ) -> dict[str, Any]:
    """Void a finalized invoice: a full credit note is issued and the invoice kept, marked."""
    from sealbill.app.audit import record
    from sealbill.app.context import RUNS_WRITE
    from sealbill.app.errors import Invalid, Problem
    from sealbill.pipeline.billing.finalize import void_invoice

    actor.require(RUNS_WRITE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("void: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        row_id, number, _ = _number(conn, org_id, ref)
    try:
        credit_id, credit_number = void_invoice(engine, org_id, number, reason=reason)
    except (InvoiceStateError, ValueError, LookupError) as exc:
        raise StateError(str(exc)) from None
    with engine.begin() as conn:
        public = ids.encode(conn, org_id, "invoice", credit_id)
        record(conn, actor, org_id, "invoice.void", "invoice",
               ids.encode(conn, org_id, "invoice", row_id),
               before={"status": "finalized"},
               after={"status": "void", "credit_note": credit_number, "reason": reason})
        delivery = delivered_by(conn, org_id, credit_id)
    return {"id": public, "number": credit_number, "corrects": number, "voided": number,
            "delivery": delivery}


def import_rates(engine: Engine, actor: Actor, org_id: int, path: Path) -> dict[str, int]:
    """Import exchange rates (currency, day, units for 1 EUR): a rate stored for a day is
    never changed, one bad record refuses the file (each problem named, nothing written; a
    state problem, exit 1, as before); the rates and the import's audit entry commit
    together (``sealbill import rates``)."""
    from sealbill.pipeline.billing.rates_import import RatesRejected, import_rates_in

    actor.require(CATALOG_WRITE)
    actor.require_org(org_id)
    try:
        with engine.begin() as conn:
            counts = import_rates_in(conn, org_id, path)
            slug = str(conn.execute(sa.select(organizations.c.slug).where(
                organizations.c.id == org_id)).scalar_one())
            audit.record(conn, actor, org_id, "exchange_rates.import", "organization", slug,
                         after={"file": path.name, **counts})
    except RatesRejected as exc:
        raise StateError(str(exc), [Problem("", p) for p in exc.problems]) from None
    return counts
