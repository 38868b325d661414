"""Customer balances: an append-only ledger of credits and of the credit applied to invoices.

Invariants: entries are only ever inserted; a finalization applies to each invoice at most the
account's balance in the invoice's currency (``domain.invoices.credit_to_apply``), in the same
transaction that numbers it, so a balance never goes below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.invoices import credit_to_apply
from sealbill.store.db import ids_as_one
from sealbill.store.schema import account_balance_entries, invoices

_E = account_balance_entries


def add_entry(conn: Connection, org_id: int, account_id: int, currency: str, amount_minor: int,
              *, kind: str, reason: str, actor: str, at: datetime,
              invoice_id: int | None = None) -> None:
    conn.execute(sa.insert(_E).values(
        organization_id=org_id, account_id=account_id, currency=currency,
        amount_minor=amount_minor, kind=kind, invoice_id=invoice_id, reason=reason[:500],
        created_by=actor, created_at=at))


def balances(conn: Connection, org_id: int, account_ids: Sequence[int]
             ) -> dict[tuple[int, str], int]:
    """Non-zero balances of these accounts, per (account, currency)."""
    rows = conn.execute(
        sa.select(_E.c.account_id, _E.c.currency, sa.func.sum(_E.c.amount_minor))
        .where(_E.c.organization_id == org_id, ids_as_one(conn, _E.c.account_id, account_ids))
        .group_by(_E.c.account_id, _E.c.currency))
    return {(int(a), str(c)): int(total) for a, c, total in rows if total}


def history(conn: Connection, org_id: int, account_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(_E.c.created_at, _E.c.kind, _E.c.currency, _E.c.amount_minor, _E.c.reason,
                  _E.c.created_by, invoices.c.number)
        .outerjoin(invoices, invoices.c.id == _E.c.invoice_id)
        .where(_E.c.organization_id == org_id, _E.c.account_id == account_id)
        .order_by(_E.c.id))
    return [dict(row._mapping) for row in rows]


def settle_finalized(conn: Connection, org_id: int, finalized: Sequence[Any], at: datetime
                     ) -> None:
    """After numbering: each credit note becomes credit of its account, then each invoice
    takes what credit there is (BT-113), in number order. ``finalized``: rows with id, kind,
    account_id, currency, total_incl_minor, number."""
    for row in finalized:
        if row.kind == "credit_note" and row.total_incl_minor > 0:
            add_entry(conn, org_id, row.account_id, row.currency, row.total_incl_minor,
                      kind="credit_note", reason=f"credit note {row.number}", actor="finalize",
                      at=at, invoice_id=row.id)
    invoices_ = [row for row in finalized if row.kind == "invoice"]
    if not invoices_:
        return
    found = balances(conn, org_id, sorted({int(r.account_id) for r in invoices_}))
    for row in invoices_:
        key = (int(row.account_id), row.currency)
        applied = credit_to_apply(found.get(key, 0), row.total_incl_minor)
        if not applied:
            continue
        found[key] -= applied
        conn.execute(sa.update(invoices).where(invoices.c.id == row.id).values(
            prepaid_minor=applied))
        add_entry(conn, org_id, row.account_id, row.currency, -applied, kind="applied",
                  reason=f"applied to {row.number}", actor="finalize", at=at,
                  invoice_id=row.id)
