"""The delivery ledger searched by address, account, invoice and time window: the console's
ledger page and the incidents opened or widened from it select messages the same way.

Invariants: every query names the organization; a criterion left blank does not filter; an
address matches a recipient exactly (case-insensitive), never a part of one; a time without
its offset is refused with the field named, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.app.errors import Invalid, Problem
from sealbill.store.schema import delivery_ledger


@dataclass(frozen=True)
class Criteria:
    address: str = ""
    account: str = ""
    invoice: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.address or self.account or self.invoice or self.since or self.until)

    @property
    def window_only(self) -> bool:
        return (self.since is not None and self.until is not None
                and not (self.address or self.account or self.invoice))


def _time(value: str, name: str, problems: list[Problem]) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(Problem(name, "not a date and time"))
        return None
    if parsed.tzinfo is None:
        problems.append(Problem(name, "give the time zone offset, e.g. 2026-11-01T00:00+01:00"))
        return None
    return parsed


def parse(address: str = "", account: str = "", invoice: str = "", since: str = "",
          until: str = "") -> Criteria:
    """The criteria of a search form; Invalid names each bad field."""
    problems: list[Problem] = []
    start, end = _time(since, "since", problems), _time(until, "until", problems)
    if start is not None and end is not None and not start < end:
        problems.append(Problem("until", "the window's end must come after its start"))
    if problems:
        raise Invalid(f"search: {len(problems)} problem(s)", problems)
    return criteria(address, account, invoice, start, end)


def criteria(address: str = "", account: str = "", invoice: str = "",
             since: datetime | None = None, until: datetime | None = None) -> Criteria:
    """Criteria from values already typed (the API's query): blanks trimmed, the address
    lowered so it matches any case."""
    return Criteria(address.strip().lower(), account.strip(), invoice.strip(), since, until)


def matching(conn: Connection, org_id: int, criteria: Criteria, limit: int | None = None,
             before_seq: int | None = None) -> list[Any]:
    """Ledger rows matching every criterion, newest first (at most ``limit``; with
    ``before_seq``, only rows older than that one — the next page of a listing)."""
    query = sa.select(delivery_ledger).where(delivery_ledger.c.organization_id == org_id)
    if criteria.account:
        query = query.where(delivery_ledger.c.account_reference == criteria.account)
    if criteria.invoice:
        query = query.where(delivery_ledger.c.invoice_number == criteria.invoice)
    if criteria.since is not None:
        query = query.where(delivery_ledger.c.sent_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(delivery_ledger.c.sent_at < criteria.until)
    if before_seq is not None:
        query = query.where(delivery_ledger.c.seq < before_seq)
    wanted = criteria.address
    if wanted:  # narrowed in SQL on the JSON text, decided exactly below
        query = query.where(sa.cast(delivery_ledger.c.recipients, sa.Text).contains(wanted))
    elif limit is not None:  # every row the SQL returns matches: the limit can go there
        query = query.limit(limit)
    rows: list[Any] = []
    result = conn.execute(query.order_by(delivery_ledger.c.seq.desc()))
    try:
        for row in result:
            if wanted and wanted not in (str(x["email"]).lower() for x in row.recipients):
                continue
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    finally:
        result.close()
    return rows
