"""Read-only listings for the CLI and the API: runs and invoices of one organization."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.db import Row
from sealbill.store.schema import accounts, billing_runs, invoices


def run_by_ref(conn: Connection, org_id: int, ref: str) -> Row:
    """A run by id (``12``) or by period (``2026-10``), within the organization."""
    condition = billing_runs.c.period == ref if "-" in ref else billing_runs.c.id == int(ref)
    row = conn.execute(sa.select(billing_runs).where(
        billing_runs.c.organization_id == org_id, condition)).first()
    if row is None:
        raise LookupError(f"billing run {ref!r} not found")
    return row._mapping


def list_invoices(conn: Connection, org_id: int, *, run_id: int | None = None,
                  status: str | None = None, account_reference: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    query = (
        sa.select(invoices.c.id, invoices.c.number, invoices.c.kind, invoices.c.status,
                  invoices.c.account_reference, accounts.c.name.label("account_name"),
                  invoices.c.issue_date, invoices.c.due_date, invoices.c.currency,
                  invoices.c.total_excl_minor, invoices.c.tax_total_minor,
                  invoices.c.total_incl_minor, invoices.c.run_id)
        .join(accounts, accounts.c.id == invoices.c.account_id)
        .where(invoices.c.organization_id == org_id)
        .order_by(invoices.c.number.is_(None), invoices.c.number, invoices.c.id)
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(invoices.c.run_id == run_id)
    if status:
        query = query.where(invoices.c.status == status)
    if account_reference:
        query = query.where(invoices.c.account_reference == account_reference)
    return [dict(row._mapping) for row in conn.execute(query)]


def invoice_id_by_number(conn: Connection, org_id: int, number: str) -> int:
    found = conn.execute(sa.select(invoices.c.id).where(
        invoices.c.organization_id == org_id, invoices.c.number == number)).scalar()
    if found is None:
        raise LookupError(f"invoice {number!r} not found")
    return int(found)


def invoice_currency(conn: Connection, org_id: int, number: str) -> str:
    found = conn.execute(sa.select(invoices.c.currency).where(
        invoices.c.organization_id == org_id, invoices.c.number == number)).scalar()
    if found is None:
        raise LookupError(f"invoice {number!r} not found")
    return str(found)
