"""The delivery ledger through the application layer: search it (who received which invoice,
about which data subject) a page at a time, and verify its hash chain and seals.

Invariants: reading only; every query names the actor's organization; the rows are selected by
:func:`sealbill.app.ledger_query.matching`, the one matcher the console and the incidents use
too (an address matches a recipient exactly, any case); a page is the next ``limit`` matching
rows, newest first, and following ``next_cursor`` never skips a row (no silent cap).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from sealbill.app import ledger_query
from sealbill.app.context import READ, Actor
from sealbill.app.errors import Invalid, Problem, StateError
from sealbill.keys import KeyMissing
from sealbill.store.db import read_transaction
from sealbill.store.delivery import ledger as store

MAX_LIMIT = 1000


def search(engine: Engine, actor: Actor, org_id: int, *, address: str = "",
           account: str = "", invoice: str = "", since: datetime | None = None,
           until: datetime | None = None, limit: int = 100, cursor: str | None = None
           ) -> dict[str, Any]:
    """Ledger rows matching every criterion given, newest first; ``cursor``: the
    ``next_cursor`` of the previous page."""
    actor.require(READ)
    actor.require_org(org_id)
    before = None
    if cursor:
        if not cursor.isdigit() or len(cursor) > 18:
            raise Invalid("ledger: 1 problem(s)", [Problem("cursor", "not a cursor of "
                                                                     "this listing")])
        before = int(cursor)
    limit = max(1, min(limit, MAX_LIMIT))
    wanted = ledger_query.criteria(address, account, invoice, since, until)
    with read_transaction(engine) as conn:
        rows = ledger_query.matching(conn, org_id, wanted, limit=limit + 1, before_seq=before)
    items = [{"seq": r.seq, "sent_at": r.sent_at, "message_id": r.message_id,
              "account": r.account_reference, "invoice": r.invoice_number,
              "document_kind": r.document_kind,
              "recipients": [str(x["email"]) for x in r.recipients],
              "data_categories": list(r.data_categories), "row_hash": r.row_hash}
             for r in rows[:limit]]
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
