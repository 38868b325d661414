"""Invoice rows: drafts in bulk, gapless finalization, credit notes, and reading back.

Invariants:
- a finalized invoice's content never changes: only ``voided_at``/``void_reason`` may be set
  on it later, and the correction itself is a credit note, a numbered document of its own;
- numbers are given only inside the finalizing transaction, which holds the series row lock
  (``SELECT ... FOR UPDATE`` on PostgreSQL, the write lock on SQLite) until commit: numbers
  are unique (a unique constraint) and gapless (a rollback gives them back);
- a draft's ``billing_key`` is unique per organization, so a rerun of a billing run can never
  create a second invoice for the same account and period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.invoices import (
    DocumentKind,
    Invoice,
    InvoiceHeading,
    InvoiceLine,
    TaxSubtotal,
    VatAccounting,
)
from sealbill.store.billing import bulk
from sealbill.store.billing.balances import settle_finalized
from sealbill.store.billing.exchange_rates import (
    MissingExchangeRate,
    accounting_to_json,
    vat_accounting_for,
)
from sealbill.store.billing.invoice_reads import InvoiceStateError as InvoiceStateError
from sealbill.store.billing.invoice_reads import check_issued, invoice_from_parts
from sealbill.store.billing.snapshots import (
    buyer_snapshot,
    party_from,
    payment_from,
    payment_snapshot,
    seller_from,
    seller_snapshot,
)
from sealbill.store.db import Row, ids_as_one, ids_in, not_indexed
from sealbill.store.delivery.prepared import Prepared
from sealbill.store.parties import records as parties
from sealbill.store.schema import (
    accounts,
    billing_runs,
    invoice_lines,
    invoice_tax_lines,
    invoices,
    number_series,
    organizations,
)


@dataclass(frozen=True)
class DraftInvoice:
    """What rating produces for one account and period, ready to be stored."""

    account_id: int
    account_reference: str
    billing_key: str
    currency: str
    locale: str
    period_start: date | None
    period_end: date | None
    lines: Sequence[InvoiceLine]
    tax_subtotals: Sequence[TaxSubtotal]
    total_excl_minor: int
    tax_total_minor: int
    total_incl_minor: int
    kind: DocumentKind = DocumentKind.INVOICE
    corrects_invoice_id: int | None = None
    #: OSS: euro cents counted towards the threshold, and the tax facts (scheme, country,
    #: evidence) stored with the invoice; ``None`` outside cross-border consumer sales.
    oss_eur_minor: int | None = None
    tax_facts: dict[str, Any] | None = None


def ensure_series(conn: Connection, org_id: int, prefix: str) -> None:
    exists = conn.execute(
        sa.select(number_series.c.id).where(number_series.c.organization_id == org_id,
                                            number_series.c.prefix == prefix)
    ).first()
    if exists is None:
        conn.execute(sa.insert(number_series).values(organization_id=org_id, prefix=prefix,
                                                     next_value=1))


def insert_drafts(conn: Connection, org_id: int, run_id: int | None,
                  drafts: Sequence[DraftInvoice], at: datetime) -> list[int]:
    """Insert drafts with their lines and VAT rows in bulk (``store.bulk``: COPY on
    PostgreSQL, the driver's executemany on SQLite); returns their ids in order."""
    if not drafts:
        return []
    return bulk.insert_drafts(conn, org_id, run_id, drafts, at)


def billed_account_ids(conn: Connection, org_id: int, period: str) -> set[int]:
    """Accounts that already have a document of the billing run of ``period`` (YYYY-MM): an
    invoice, or the credit note of a period whose credits exceeded its charges (both hold the
    period's billing key). A manual credit note delivered by that run (billing key
    ``credit:…``) bills nothing there: it does not count."""
    return {int(i) for i in conn.execute(
        sa.select(invoices.c.account_id)
        .join(billing_runs, billing_runs.c.id == invoices.c.run_id)
        .where(invoices.c.organization_id == org_id,
               billing_runs.c.organization_id == org_id, billing_runs.c.period == period,
               ~invoices.c.billing_key.startswith("credit:"))
    ).scalars()}


def last_invoice_ids(conn: Connection, org_id: int, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's most recent finalized invoice (not credit note), by id."""
    rows = conn.execute(
        sa.select(invoices.c.account_id, sa.func.max(invoices.c.id))
        .where(invoices.c.organization_id == org_id, invoices.c.account_id.in_(account_ids),
               invoices.c.kind == "invoice", invoices.c.status == "finalized")
        .group_by(invoices.c.account_id))
    return {int(account_id): int(invoice_id) for account_id, invoice_id in rows}


def _take_numbers(conn: Connection, org_id: int, prefix: str, count: int) -> list[str]:
    """Reserve ``count`` consecutive numbers under the series row lock (held until commit)."""
    ensure_series(conn, org_id, prefix)
    first = conn.execute(
        sa.select(number_series.c.next_value)
        .where(number_series.c.organization_id == org_id, number_series.c.prefix == prefix)
        .with_for_update()
    ).scalar_one()
    conn.execute(
        sa.update(number_series)
        .where(number_series.c.organization_id == org_id, number_series.c.prefix == prefix)
        .values(next_value=first + count)
    )
    return [f"{prefix}{value:06d}" for value in range(first, first + count)]


def _seller(conn: Connection, org_id: int) -> Row:
    """The organization's row without its address policy (the allowed recipient domains:
    megabytes of JSON at 100,000 accounts, decoded for every chunk when read whole)."""
    row = conn.execute(sa.select(*(c for c in organizations.c if c.name != "address_policy"))
                       .where(organizations.c.id == org_id)).first()
    if row is None:
        raise parties.NotFound(f"organization {org_id} does not exist")
    return row._mapping


class _Draft(NamedTuple):
    """A draft as :func:`finalize` reads it."""

    id: int
    kind: str
    account_id: int
    account_reference: str
    currency: str
    tax_total_minor: int
    total_incl_minor: int


class _Numbered(NamedTuple):
    """A draft as :func:`finalize` read it, with the number it was given."""

    id: int
    kind: str
    account_id: int
    account_reference: str
    currency: str
    tax_total_minor: int
    total_incl_minor: int
    number: str


def finalize(conn: Connection, org_id: int, invoice_ids: Sequence[int], *, issue_date: date,
             at: datetime) -> list[tuple[int, str]]:
    """Finalize the given drafts in this transaction; returns (id, number) in number order.

    Ids that are not drafts of this organization are ignored (a concurrent finalizer took
    them), so finalizing is safe to retry.
    """
    org = _seller(conn, org_id)
    drafts = [_Draft._make(row) for row in conn.execute(
        sa.select(invoices.c.id, invoices.c.kind, invoices.c.account_id,
                  invoices.c.account_reference, invoices.c.currency,
                  invoices.c.tax_total_minor, invoices.c.total_incl_minor)
        .join(accounts, accounts.c.id == invoices.c.account_id)
        .where(invoices.c.organization_id == org_id,
               ids_as_one(conn, invoices.c.id, invoice_ids), invoices.c.status == "draft")
        .order_by(invoices.c.id)
        .with_for_update(of=invoices)
    )]
    if not drafts:
        return []
    accounting = _vat_accounting(conn, org_id, drafts, issue_date)
    by_kind: dict[str, list[Any]] = {}
    for row in drafts:
        by_kind.setdefault(row.kind, []).append(row)
    seller = seller_snapshot(org)
    due = issue_date + timedelta(days=int(org["payment_terms_days"]))
    account_ids = sorted({int(row.account_id) for row in drafts})
    buyers = _accounts_by_id(conn, org_id, account_ids)
    emails = _first_billing_emails(conn, org_id, account_ids)
    done: list[tuple[int, str]] = []
    for kind, rows in sorted(by_kind.items()):
        prefix = org["invoice_series"] if kind == "invoice" else org["credit_note_series"]
        numbers = _take_numbers(conn, org_id, prefix, len(rows))
        updates = [
            (int(row.id), number,
             buyer_snapshot(buyers[row.account_id], emails.get(row.account_id)),
             payment_snapshot(buyers[row.account_id]))
            for row, number in zip(rows, numbers, strict=True)
        ]
        # No notes of our own: the documents add the legal ones (PMT, PMD, AAB), worded for a
        # business or a consumer buyer.
        bulk.finalize_rows(conn, updates, issue_date=issue_date, due_date=due, at=at,
                           seller=seller, notes=[])
        done.extend((invoice_id, number) for invoice_id, number, _, _ in updates)
    if accounting:  # one statement for every draft not in EUR (a fifth of a run, or more)
        conn.execute(sa.update(invoices).where(
            invoices.c.id == sa.bindparam("invoice_id")
        ).values(vat_accounting=sa.bindparam("accounting")), [
            {"invoice_id": invoice_id, "accounting": accounting_to_json(value)}
            for invoice_id, value in accounting.items()])
    given = dict(done)
    numbered = [_Numbered(*row, given[row.id]) for row in drafts]
    settle_finalized(conn, org_id, sorted(numbered, key=lambda row: (row.kind, row.number)), at)
    return done


def _vat_accounting(conn: Connection, org_id: int, drafts: Sequence[Any],
                    issue_date: date) -> dict[int, VatAccounting]:
    """BT-111 of each draft not in EUR with VAT; every missing rate at once, before any
    number is taken (:class:`MissingExchangeRate`)."""
    found: dict[int, VatAccounting] = {}
    problems: list[str] = []
    for row in drafts:
        try:
            value = vat_accounting_for(conn, org_id, row.currency, row.tax_total_minor,
                                       issue_date)
        except LookupError as error:
            problems.append(f"draft {row.id} (account {row.account_reference}): {error}")
            continue
        if value is not None:
            found[int(row.id)] = value
    if problems:
        raise MissingExchangeRate(problems)
    return found


def require_exchange_rates(conn: Connection, org_id: int, run_id: int,
                           issue_date: date) -> None:
    """Raise :class:`MissingExchangeRate` listing every draft of the run that needs a rate
    the table does not hold — before a finalization numbers anything."""
    drafts = conn.execute(
        sa.select(invoices.c.id, invoices.c.account_reference, invoices.c.currency,
                  invoices.c.tax_total_minor)
        .where(invoices.c.organization_id == org_id, invoices.c.status == "draft",
               invoices.c.currency != "EUR", invoices.c.tax_total_minor != 0,
               invoices.c.run_id == run_id)).all()
    _vat_accounting(conn, org_id, drafts, issue_date)


# What the buyer and payment snapshots take of an account (snapshots.py).
_SNAPSHOT_COLUMNS = ("id", "name", "address_line1", "address_line2", "postcode", "city",
                     "country", "vat_id", "siren", "electronic_address",
                     "electronic_address_scheme", "payment_kind", "payment_display")


def _accounts_by_id(conn: Connection, org_id: int,
                    account_ids: Sequence[int]) -> dict[int, Row]:
    rows = conn.execute(sa.select(*(accounts.c[name] for name in _SNAPSHOT_COLUMNS)).where(
        accounts.c.organization_id == org_id, ids_as_one(conn, accounts.c.id, account_ids)))
    return {row["id"]: row for row in rows.mappings()}


def _first_billing_emails(conn: Connection, org_id: int,
                          account_ids: Sequence[int]) -> dict[int, str]:
    """Each account's first verified billing address, for the buyer's BT-49 fallback."""
    found: dict[int, str] = {}
    for account_id, recipient in parties.verified_billing_recipients_many(
            conn, org_id, account_ids):
        found.setdefault(account_id, recipient.email)
    return found


def load_invoice(conn: Connection, org_id: int, invoice_id: int) -> Invoice:
    """The finalized invoice as the domain object every document is rendered from (a chunk
    at a time: ``store.invoice_reads.load_invoices``)."""
    row = conn.execute(
        sa.select(invoices).where(invoices.c.organization_id == org_id,
                                  invoices.c.id == invoice_id)
    ).first()
    return invoice_from_rows(conn, check_issued(row._mapping if row else None, invoice_id))


# Read for every message sent: prepared once (see store.prepared).
_CORRECTED = invoices.alias("corrected")
_HEADING_COLUMNS = (
    invoices.c.status, invoices.c.kind, invoices.c.number, invoices.c.currency,
    invoices.c.locale, invoices.c.seller_snapshot, invoices.c.buyer_snapshot,
    invoices.c.account_reference, invoices.c.total_incl_minor, invoices.c.payment_snapshot,
    invoices.c.prepaid_minor, _CORRECTED.c.number.label("corrected_number"))
_HEADING_FROM = invoices.outerjoin(_CORRECTED, _CORRECTED.c.id == invoices.c.corrects_invoice_id)
_HEADING = Prepared(sa.select(*_HEADING_COLUMNS).select_from(_HEADING_FROM)
    .where(invoices.c.organization_id == sa.bindparam("org"),
           invoices.c.id == sa.bindparam("invoice")))


def load_invoice_heading(conn: Connection, org_id: int, invoice_id: int) -> InvoiceHeading:
    """What a message names about a finalized invoice, in one row (no lines)."""
    return heading_from_row(invoice_id, _HEADING.first(conn, {"org": org_id,
                                                              "invoice": invoice_id}))


def heading_rows(conn: Connection, org_id: int, invoice_ids: Sequence[int]) -> dict[int, Any]:
    """The rows :func:`heading_from_row` reads, for several invoices in one statement (a
    sender's batch), by invoice id (an id not found is absent)."""
    rows = conn.execute(sa.select(invoices.c.id, *_HEADING_COLUMNS).select_from(_HEADING_FROM)
                        .where(not_indexed(invoices.c.organization_id) == org_id,
                               ids_in(conn, invoices.c.id, invoice_ids)))
    return {int(row.id): row for row in rows}


def heading_from_row(invoice_id: int, row: Any) -> InvoiceHeading:
    """What a message names about a finalized invoice, from its heading row (None: not
    found; a draft is refused)."""
    if row is None:
        raise parties.NotFound(f"invoice {invoice_id} not found")
    if row.status not in ("finalized", "void") or row.number is None:
        raise InvoiceStateError(f"invoice {invoice_id} is a draft; finalize it first")
    return InvoiceHeading(
        kind=DocumentKind(row.kind), number=row.number, currency=row.currency,
        locale=row.locale, seller_name=seller_from(row.seller_snapshot).name,
        buyer=party_from(row.buyer_snapshot), account_reference=row.account_reference,
        total_incl_minor=row.total_incl_minor,
        payment_method=payment_from(row.payment_snapshot),
        corrected_invoice_number=row.corrected_number, prepaid_minor=int(row.prepaid_minor or 0))


def invoice_from_rows(conn: Connection, row: Row) -> Invoice:
    lines = conn.execute(
        sa.select(invoice_lines).where(invoice_lines.c.invoice_id == row["id"])
        .order_by(invoice_lines.c.position)
    ).all()
    taxes = conn.execute(
        sa.select(invoice_tax_lines).where(invoice_tax_lines.c.invoice_id == row["id"])
        .order_by(invoice_tax_lines.c.id)
    ).all()
    corrected = None
    if row["corrects_invoice_id"] is not None:
        corrected = conn.execute(
            sa.select(invoices.c.number, invoices.c.issue_date)
            .where(invoices.c.id == row["corrects_invoice_id"])
        ).first()
    return invoice_from_parts(row, lines, taxes, corrected)
