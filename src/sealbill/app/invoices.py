"""Invoices and credit notes: list with filters (cursor pages, no silent cap), show, download.

Invariant: reading never changes an invoice; a download returns the stored PDF only when its
bytes still match the SHA-256 recorded at rendering (the file store is immutable).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import ids
from sealbill.app.audit import page
from sealbill.app.context import READ, Actor
from sealbill.app.errors import AppError, NotFound, StateError
from sealbill.documents import docstore
from sealbill.store import queries
from sealbill.store.invoices import InvoiceStateError, load_invoice
from sealbill.store.schema import accounts, billing_runs, documents, invoices

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
