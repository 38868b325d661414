"""The delivery ledger through the application layer: search it (who received which invoice,
about which data subject) a page at a time, and verify its hash chain and seals.

Invariants: reading only; every query names the actor's organization; a page is the next
``limit`` ledger rows (newest first) matching the SQL criteria, of which those whose recipients
hold ``address`` exactly are returned — so a page may hold fewer items than ``limit``, but
following ``next_cursor`` never skips a row (no silent cap).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.app.context import READ, Actor
from sealbill.app.errors import Invalid, Problem, StateError
from sealbill.keys import KeyMissing
from sealbill.store.db import read_transaction
from sealbill.store.delivery import ledger as store
from sealbill.store.schema import delivery_ledger

MAX_LIMIT = 1000


def search(engine: Engine, actor: Actor, org_id: int, *, address: str = "",
           account: str = "", invoice: str = "", since: datetime | None = None,
           until: datetime | None = None, limit: int = 100, cursor: str | None = None
           ) -> dict[str, Any]:
    """Ledger rows matching every criterion given, newest first; ``cursor``: the
    ``next_cursor`` of the previous page."""
    actor.require(READ)
    actor.require_org(org_id)
    table = delivery_ledger
    query = sa.select(table).where(table.c.organization_id == org_id)
    if account.strip():
        query = query.where(table.c.account_reference == account.strip())
    if invoice.strip():
        query = query.where(table.c.invoice_number == invoice.strip())
    if since is not None:
        query = query.where(table.c.sent_at >= since)
    if until is not None:
        query = query.where(table.c.sent_at < until)
    if cursor:
        if not cursor.isdigit() or len(cursor) > 18:
            raise Invalid("ledger: 1 problem(s)", [Problem("cursor", "not a cursor of "
                                                                     "this listing")])
        query = query.where(table.c.seq < int(cursor))
    wanted = address.strip().lower()
    if wanted:  # narrowed in SQL on the JSON text, decided exactly below
        query = query.where(sa.cast(table.c.recipients, sa.Text).contains(wanted))
    limit = max(1, min(limit, MAX_LIMIT))
    with read_transaction(engine) as conn:
        rows = conn.execute(query.order_by(table.c.seq.desc()).limit(limit + 1)).all()
    items = []
    for r in rows[:limit]:
        emails = [str(x["email"]) for x in r.recipients]
        if wanted and wanted not in (e.lower() for e in emails):
            continue
        items.append({"seq": r.seq, "sent_at": r.sent_at, "message_id": r.message_id,
                      "account": r.account_reference, "invoice": r.invoice_number,
                      "document_kind": r.document_kind, "recipients": emails,
                      "data_categories": list(r.data_categories), "row_hash": r.row_hash})
    more = len(rows) > limit
    return {"items": items, "next_cursor": str(rows[limit - 1].seq) if more else None}


def verify(engine: Engine, actor: Actor, org_id: int) -> dict[str, Any]:
    """Recompute the chain and the seals, compare with the checkpoints kept outside the
    database (``sealbill ledger verify``)."""
    actor.require(READ)
    actor.require_org(org_id)
    try:
        with read_transaction(engine) as conn:
            report = store.verify(conn, org_id)
    except KeyMissing as exc:
        raise StateError(str(exc)) from None
    return {"ok": report.ok, "rows": report.rows, "problems": report.problems}
