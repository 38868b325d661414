"""The plan stage's reads and writes a chunk at a time: the run's invoices by id, a plan's
envelopes by id or by group of accounts, the canary marks.

Invariants: every statement filters on ``organization_id``, kept out of SQLite's index
choice (``not_indexed``: without statistics it took the organization's index and walked
every envelope of every plan of the organization, where the plan's index finds its rows);
no function returns more than the chunk asked for, except :func:`plan_accounts`, whose
answer is a packed array of 8-byte account ids (800 kB for 100,000 accounts) — the order
the plan is judged in.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.store.db import ids_as_one, not_indexed
from sealbill.store.schema import accounts, delivery_envelopes, invoices, outbox

# What the judge, the approval and the review read of an envelope (not its digests, creation
# time, approval digest: each column read is converted, a row at a time, by SQLAlchemy).
_ENVELOPE_COLUMNS = (delivery_envelopes.c.id, delivery_envelopes.c.invoice_id,
                     delivery_envelopes.c.account_id, delivery_envelopes.c.recipients,
                     delivery_envelopes.c.amount_minor, delivery_envelopes.c.currency,
                     invoices.c.number, invoices.c.kind, accounts.c.reference,
                     outbox.c.status.label("outbox_status"), outbox.c.message_id)


def _envelopes(org_id: int, plan_id: int, *, by_account: bool = False) -> sa.Select[Any]:
    """The envelope rows of a plan; ``by_account``: the caller filters on accounts, and the
    plan is kept out of SQLite's index choice (with the plan's index it would walk the whole
    plan for every group of accounts)."""
    plan = not_indexed(delivery_envelopes.c.plan_id) if by_account \
        else delivery_envelopes.c.plan_id
    return (sa.select(*_ENVELOPE_COLUMNS)
            .join(invoices, invoices.c.id == delivery_envelopes.c.invoice_id)
            .join(accounts, accounts.c.id == delivery_envelopes.c.account_id)
            .outerjoin(outbox, outbox.c.envelope_id == delivery_envelopes.c.id)
            .where(not_indexed(delivery_envelopes.c.organization_id) == org_id,
                   plan == plan_id))


def envelope_chunks(conn: Connection, org_id: int, plan_id: int, size: int
                    ) -> Iterator[Sequence[Mapping[str, Any]]]:
    """The plan's envelope rows (the columns of :data:`_ENVELOPE_COLUMNS`), ``size`` at a
    time, in invoice order: the order of the plan's unique (plan, invoice) index, so each
    chunk starts where the last ended (in id order, SQLite took the plan's index and sorted
    every envelope after the last chunk's, for each chunk: quadratic in the plan)."""
    after = 0
    while True:
        rows = cast("list[Mapping[str, Any]]", conn.execute(
            _envelopes(org_id, plan_id).where(delivery_envelopes.c.invoice_id > after)
            .order_by(delivery_envelopes.c.invoice_id).limit(size)).mappings().all())
        if not rows:
            return
        yield rows
        after = int(rows[-1]["invoice_id"])


def envelopes_of_accounts(conn: Connection, org_id: int, plan_id: int,
                          account_ids: Sequence[int]) -> list[Mapping[str, Any]]:
    """Every envelope row of the plan for these accounts (the columns of
    :data:`_ENVELOPE_COLUMNS`), in id order."""
    if not account_ids:
        return []
    return cast("list[Mapping[str, Any]]", conn.execute(
        _envelopes(org_id, plan_id, by_account=True)
        .where(ids_as_one(conn, delivery_envelopes.c.account_id, account_ids))
        .order_by(delivery_envelopes.c.id)).mappings().all())


def plan_accounts(conn: Connection, org_id: int, plan_ids: Sequence[int]) -> array[int]:
    """The accounts with an envelope in any of these plans, ascending, packed."""
    out: array[int] = array("q")
    result = conn.execute(
        sa.select(delivery_envelopes.c.account_id).distinct()
        .where(not_indexed(delivery_envelopes.c.organization_id) == org_id,
               delivery_envelopes.c.plan_id.in_(list(plan_ids)))
        .order_by(delivery_envelopes.c.account_id),
        execution_options={"stream_results": True, "yield_per": 5000})
    for (account_id,) in result:
        out.append(int(account_id))
    return out


def count_envelopes(conn: Connection, org_id: int, plan_id: int) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(delivery_envelopes).where(
        not_indexed(delivery_envelopes.c.organization_id) == org_id,
        delivery_envelopes.c.plan_id == plan_id)).scalar_one())


def canary_invoice_ids(conn: Connection, org_id: int, plan_id: int) -> set[int]:
    """The invoices of the plan's canary slice (a share of the plan: small)."""
    return {int(i) for i in conn.execute(sa.select(delivery_envelopes.c.invoice_id).where(
        not_indexed(delivery_envelopes.c.organization_id) == org_id,
        delivery_envelopes.c.plan_id == plan_id, delivery_envelopes.c.is_canary)).scalars()}


def mark_canary(conn: Connection, org_id: int, plan_id: int, invoice_ids: Sequence[int]
                ) -> None:
    """The envelopes of these invoices are the plan's canary slice."""
    ordered = sorted(invoice_ids)
    for start in range(0, len(ordered), 500):
        conn.execute(sa.update(delivery_envelopes).where(
            not_indexed(delivery_envelopes.c.organization_id) == org_id,
            delivery_envelopes.c.plan_id == plan_id,
            delivery_envelopes.c.invoice_id.in_(ordered[start:start + 500])
        ).values(is_canary=True))


def count_run_invoices(conn: Connection, org_id: int, run_id: int,
                       only: Sequence[int] | None = None) -> int:
    """How many finalized invoices the run has (of ``only``, sorted ids, when given)."""
    query = sa.select(sa.func.count()).select_from(invoices).where(
        invoices.c.organization_id == org_id, invoices.c.run_id == run_id,
        invoices.c.status == "finalized")
    if only is None:
        return int(conn.execute(query).scalar_one())
    return sum(int(conn.execute(query.where(invoices.c.id.in_(list(only[s:s + 500])))
                                ).scalar_one()) for s in range(0, len(only), 500))
