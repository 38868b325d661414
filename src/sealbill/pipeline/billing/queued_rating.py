"""Rating a run in chunks of accounts, for the queue's workers (``sealbill run start``).

The embedded :func:`sealbill.pipeline.billing.invoice.bill_period` rates a whole period in one
transaction. On the queue, a run's accounts are split into ranges of ids
(:func:`plan_chunks`, written in the transaction that creates the run) and each range is rated
by its own job (:func:`bill_chunk`), on any machine, with the same rating code.

Invariants:
- a chunk is rated whole or not at all, and once: its drafts and its ``rated_at`` are written
  in one transaction that holds the chunk's row lock; a second execution (a retry after its
  worker died, a stalled job requeued while the first still runs) waits for that lock, then
  finds the chunk rated and writes nothing;
- an account is billed at most once per period whatever happens (the unique billing key, as
  in the embedded mode; an account already billed is skipped);
- the OSS threshold is a running total over the organization's invoices of the year: a chunk
  holding drafts the OSS decides on takes the organization's row lock before it reads the
  total, so chunks decide one after the other, each on the totals the previous ones committed.
  Across chunks the order is the order in which they reach that lock (every invoice of a run
  has the same supply date); within a chunk it is the accounts' order, as in the embedded run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.pipeline.billing.invoice import (
    BillingError,
    BillingResult,
    LoadWindow,
    _load_chunk,
    _record,
)
from sealbill.pipeline.billing.oss import apply_oss, year_totals
from sealbill.pipeline.billing.rate import metrics_from_rows
from sealbill.pipeline.billing.rate_chunks import RatingContext, rate_chunk
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.db import Row, is_postgres
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts, billing_runs, invoices, organizations, rating_chunks

RATE_CHUNK_ENV = "SEALBILL_RATE_CHUNK"


def rate_chunk_size() -> int:
    """Accounts per rating job (``SEALBILL_RATE_CHUNK``, default 1,000)."""
    return max(1, int(os.environ.get(RATE_CHUNK_ENV, "1000")))


def plan_chunks(conn: Connection, org_id: int, run_id: int, size: int) -> list[int]:
    """Write the run's rating chunks (ranges of ``size`` accounts, the last open-ended) and
    return their ids in account order. At least one chunk, even with no account yet."""
    numbered = sa.select(accounts.c.id, sa.func.row_number().over(
        order_by=accounts.c.id).label("n")).where(
        accounts.c.organization_id == org_id).subquery()
    firsts = [int(i) for i in conn.execute(sa.select(numbered.c.id).where(
        (numbered.c.n - 1) % size == 0).order_by(numbered.c.id)).scalars()]
    bounds = [0, *firsts[1:]]
    for first, following in zip(bounds, [*bounds[1:], None], strict=True):
        conn.execute(sa.insert(rating_chunks).values(
            organization_id=org_id, run_id=run_id, first_account_id=first,
            next_account_id=following))
    return chunk_ids(conn, org_id, run_id)


def chunk_ids(conn: Connection, org_id: int, run_id: int, *, unrated: bool = False
              ) -> list[int]:
    """The run's chunks in account order (only those not rated yet with ``unrated``)."""
    query = sa.select(rating_chunks.c.id).where(
        rating_chunks.c.organization_id == org_id, rating_chunks.c.run_id == run_id)
    if unrated:
        query = query.where(rating_chunks.c.rated_at.is_(None))
    return [int(i) for i in conn.execute(
        query.order_by(rating_chunks.c.first_account_id)).scalars()]


def _lock_chunk(conn: Connection, org_id: int, chunk_id: int) -> Row:
    query = rating_chunks.select().where(rating_chunks.c.organization_id == org_id,
                                         rating_chunks.c.id == chunk_id)
    if is_postgres(conn):
        query = query.with_for_update()
    return conn.execute(query).one()._mapping


def _accounts_of(conn: Connection, org_id: int, chunk: Row) -> list[Row]:
    query = sa.select(accounts).where(accounts.c.organization_id == org_id,
                                      accounts.c.id >= chunk["first_account_id"])
    if chunk["next_account_id"] is not None:
        query = query.where(accounts.c.id < chunk["next_account_id"])
    return [r._mapping for r in conn.execute(query.order_by(accounts.c.id))]


def _billed(conn: Connection, org_id: int, period: str, ids: list[int]) -> set[int]:
    """Of ``ids``, the accounts that have a document of ``period``'s run already."""
    return {int(i) for i in conn.execute(
        sa.select(invoices.c.account_id).join(billing_runs, billing_runs.c.id ==
                                              invoices.c.run_id)
        .where(invoices.c.organization_id == org_id, billing_runs.c.period == period,
               invoices.c.account_id.in_(ids))).scalars()} if ids else set()


def bill_chunk(engine: Engine, org_id: int, chunk_id: int) -> BillingResult | None:
    """Rate the chunk's accounts and store their drafts; None when it was rated already.
    A catalog with problems raises :class:`BillingError` (nothing written)."""
    with engine.begin() as conn:
        chunk = _lock_chunk(conn, org_id, chunk_id)
        if chunk["rated_at"] is not None:
            return None
        run = conn.execute(billing_runs.select().where(
            billing_runs.c.id == chunk["run_id"])).one()
        org = dict(parties.organization(conn, org_id))
        catalog = catalog_store.load_catalog(conn, org_id)
        metric_rows = catalog_store.load_metrics(conn, org_id)
        problems = catalog.problems(set(metric_rows))
        if problems:
            raise BillingError("the price catalog has problems; nothing was billed", problems)
        start, end = run.period_start, run.period_end
        result = BillingResult(int(run.id), str(run.period))
        rows = _accounts_of(conn, org_id, chunk)
        billed = _billed(conn, org_id, result.period, [int(r["id"]) for r in rows])
        window = LoadWindow.of(catalog, metric_rows, start, end)
        ctx = RatingContext(org, catalog, metrics_from_rows(metric_rows), start, end,
                            result.period)
        rated = rate_chunk(_load_chunk(conn, org_id, rows, start, end, billed, result,
                                       window), ctx)
        result.problems.extend(rated.problems)
        result.skipped_zero += rated.skipped_zero
        drafts = rated.drafts
        if any(d.tax_facts is not None for d in drafts):
            _lock_organization(conn, org_id)
            oss_year = year_totals(conn, org_id, start.year, bool(org.get("oss_opt_in")))
            drafts = apply_oss(conn, org_id, oss_year, start, drafts, result.problems)
        _record(conn, org_id, result.run_id, drafts, datetime.now(UTC), result, False)
        conn.execute(sa.update(rating_chunks).where(rating_chunks.c.id == chunk_id).values(
            rated_at=datetime.now(UTC), drafted=result.drafted,
            problems=json.dumps(result.problems) if result.problems else None))
        return result


def _lock_organization(conn: Connection, org_id: int) -> None:
    """Serialize the OSS decisions of an organization's chunks (see the module)."""
    if is_postgres(conn):
        conn.execute(sa.select(organizations.c.id).where(
            organizations.c.id == org_id).with_for_update())


def problems_of(conn: Connection, org_id: int, run_id: int) -> list[str]:
    """Every account the run's rated chunks left unbilled, with the reason."""
    found: list[str] = []
    for text in conn.execute(sa.select(rating_chunks.c.problems).where(
            rating_chunks.c.organization_id == org_id, rating_chunks.c.run_id == run_id,
            rating_chunks.c.problems.is_not(None)).order_by(
            rating_chunks.c.first_account_id)).scalars():
        found.extend(json.loads(text))
    return found
