"""The identifiers the guard looks for in outgoing messages, read once per send."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.identifiers import IdentifierIndex
from sealbill.store.schema import accounts, invoices


def identifier_index(engine: Engine, org_id: int, run_id: int) -> IdentifierIndex:
    """Every account reference of the organization and every invoice number of the run.

    Built once per send: numbers and references of finalized invoices do not change.
    """
    with engine.begin() as conn:
        refs = conn.execute(sa.select(accounts.c.id, accounts.c.reference).where(
            accounts.c.organization_id == org_id))
        entries = [("reference", str(ref), f"account:{aid}") for aid, ref in refs]
        rows = conn.execute(sa.select(invoices.c.id, invoices.c.number, invoices.c.account_id,
                                      invoices.c.account_reference).where(
            invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
            invoices.c.number.is_not(None)))
        for iid, number, aid, printed in rows:
            entries.append(("number", str(number), f"invoice:{iid}"))
            entries.append(("reference", str(printed), f"account:{aid}"))
    return IdentifierIndex.build(entries)
