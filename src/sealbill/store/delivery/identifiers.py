"""The identifiers the guard looks for in outgoing messages, read once per send."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.identifiers import IdentifierIndex
from sealbill.store.schema import accounts, invoices

STREAM = {"stream_results": True, "yield_per": 2000}  # PostgreSQL: a server-side cursor


def identifier_entries(conn: Connection, org_id: int, run_id: int
                       ) -> Iterator[tuple[str, str, str]]:
    """(kind, value, owner) for every account reference of the organization and every
    invoice number of the run, streamed (numbers and references of finalized invoices do not
    change)."""
    refs = conn.execute(sa.select(accounts.c.id, accounts.c.reference).where(
        accounts.c.organization_id == org_id), execution_options=STREAM)
    for aid, ref in refs:
        yield "reference", str(ref), f"account:{aid}"
    rows = conn.execute(sa.select(invoices.c.id, invoices.c.number, invoices.c.account_id,
                                  invoices.c.account_reference).where(
        invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
        invoices.c.number.is_not(None)), execution_options=STREAM)
    for iid, number, aid, printed in rows:
        yield "number", str(number), f"invoice:{iid}"
        yield "reference", str(printed), f"account:{aid}"


def identifier_index(engine: Engine, org_id: int, run_id: int) -> IdentifierIndex:
    """Every account reference of the organization and every invoice number of the run."""
    with engine.begin() as conn:
        return IdentifierIndex.build(identifier_entries(conn, org_id, run_id))
