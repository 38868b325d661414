"""Finalized invoices read back as domain objects, one at a time or a chunk at a time.

Invariants:
- :func:`invoice_from_parts` is the only place a stored invoice becomes an :class:`Invoice`:
  the single read (``store.invoices.load_invoice``) and the chunked read give equal objects;
- :func:`load_invoices` reads a chunk in four statements whatever its size (the invoice rows,
  their lines, their VAT rows, the invoices credit notes correct), returns the invoices in
  the order asked, and refuses the whole chunk if one id is missing or still a draft;
- :func:`stream_invoices` holds one chunk at a time: memory does not grow with the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.invoices import DocumentKind, Invoice, InvoiceLine, TaxSubtotal, VatCategory
from sealbill.store.billing.exchange_rates import accounting_from_json
from sealbill.store.billing.snapshots import party_from, payment_from, seller_from
from sealbill.store.db import Row, ids_in, read_transaction
from sealbill.store.parties.records import NotFound
from sealbill.store.schema import invoice_lines, invoice_tax_lines, invoices

CHUNK = 200
# Enum members by value: a dict lookup, where calling the enum costs a run ~10 % of its read.
_VAT = {category.value: category for category in VatCategory}
_KINDS = {kind.value: kind for kind in DocumentKind}


class InvoiceStateError(RuntimeError):
    """An operation that the invoice's state forbids (e.g. editing a finalized invoice)."""


def check_issued(row: Row | None, invoice_id: int) -> Row:
    """``row`` if it is an issued (finalized or void) invoice, else why not."""
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    if row["status"] not in ("finalized", "void") or row["number"] is None:
        raise InvoiceStateError(f"invoice {invoice_id} is a draft; finalize it first")
    return row


def invoice_from_parts(row: Row, lines: Sequence[Any], taxes: Sequence[Any],
                       corrected: Any | None, sellers: dict[Any, Any] | None = None) -> Invoice:
    """The :class:`Invoice` of an invoice row, its line rows (by position), its VAT rows (by
    id) and the (number, issue_date) of the invoice a credit note corrects. ``sellers``, when
    given, makes equal sellers one object (a chunk's invoices share their seller: pickled
    once for a worker, not once an invoice)."""
    seller = seller_from(row["seller_snapshot"])
    if sellers is not None:
        seller = sellers.setdefault(seller, seller)
    return Invoice(
        kind=_KINDS[row["kind"]],
        number=row["number"],
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        currency=row["currency"],
        locale=row["locale"],
        seller=seller,
        buyer=party_from(row["buyer_snapshot"]),
        account_reference=row["account_reference"],
        lines=tuple(
            InvoiceLine(line.position, line.description, line.quantity, line.unit_price,
                        line.amount_minor, _VAT[line.vat_category], line.vat_rate,
                        period_start=line.period_start, period_end=line.period_end)
            for line in lines
        ),
        tax_subtotals=tuple(
            TaxSubtotal(_VAT[t.vat_category], t.vat_rate, t.base_minor, t.tax_minor,
                        t.exemption_reason, t.exemption_code)
            for t in taxes
        ),
        total_excl_minor=row["total_excl_minor"],
        tax_total_minor=row["tax_total_minor"],
        total_incl_minor=row["total_incl_minor"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        payment_method=payment_from(row["payment_snapshot"]),
        business_process=row["business_process"],
        corrected_invoice_number=corrected.number if corrected else None,
        corrected_invoice_date=corrected.issue_date if corrected else None,
        notes=tuple((code, text) for code, text in (row["notes"] or [])),
        vat_accounting=accounting_from_json(row.get("vat_accounting")),
        oss_country=_oss_country(row.get("tax_facts")),
        prepaid_minor=int(row.get("prepaid_minor") or 0),
    )


def _oss_country(facts: Mapping[str, Any] | None) -> str | None:
    return str(facts["country"]) if facts and facts.get("scheme") == "oss" else None


# What an Invoice is made of, and what says it is issued: not the timestamps, keys, etc.
_READ = [invoices.c[name] for name in (
    "id", "status", "kind", "number", "issue_date", "due_date", "currency", "locale",
    "seller_snapshot", "buyer_snapshot", "payment_snapshot", "account_reference",
    "total_excl_minor", "tax_total_minor", "total_incl_minor", "period_start", "period_end",
    "business_process", "corrects_invoice_id", "notes", "vat_accounting", "tax_facts",
    "prepaid_minor")]


def load_invoices(conn: Connection, org_id: int, invoice_ids: Sequence[int]) -> list[Invoice]:
    """The issued invoices ``invoice_ids`` of the organization, in that order (4 statements)."""
    if not invoice_ids:
        return []
    rows = {int(row.id): row._mapping for row in conn.execute(
        sa.select(*_READ).where(invoices.c.organization_id == org_id,
                                ids_in(conn, invoices.c.id, invoice_ids))).all()}
    ordered = [check_issued(rows.get(int(i)), int(i)) for i in invoice_ids]
    lines = _grouped(conn, invoice_lines, invoice_ids, invoice_lines.c.position)
    taxes = _grouped(conn, invoice_tax_lines, invoice_ids, invoice_tax_lines.c.id)
    corrects = sorted({int(r["corrects_invoice_id"]) for r in ordered
                       if r["corrects_invoice_id"] is not None})
    corrected = {int(r.id): r for r in conn.execute(
        sa.select(invoices.c.id, invoices.c.number, invoices.c.issue_date)
        .where(ids_in(conn, invoices.c.id, corrects)))} if corrects else {}
    sellers: dict[Any, Any] = {}
    return [invoice_from_parts(row, lines.get(int(row["id"]), ()), taxes.get(int(row["id"]), ()),
                               corrected.get(row["corrects_invoice_id"]), sellers)
            for row in ordered]


def _grouped(conn: Connection, table: sa.Table, invoice_ids: Sequence[int],
             order: sa.ColumnElement[Any]) -> dict[int, list[Any]]:
    """The rows of ``table`` of these invoices, grouped by invoice, each group in ``order``."""
    found: dict[int, list[Any]] = {}
    for row in conn.execute(sa.select(table).where(ids_in(conn, table.c.invoice_id, invoice_ids))
                            .order_by(table.c.invoice_id, order)).all():  # one fetch
        found.setdefault(int(row.invoice_id), []).append(row)
    return found


def stream_invoices(engine: Engine, org_id: int, invoice_ids: Sequence[int],
                    chunk: int = CHUNK) -> Iterator[tuple[list[int], list[Invoice]]]:
    """(ids, invoices) a chunk at a time, each chunk read in its own short read-only
    transaction (on SQLite it takes no write lock: a renderer storing documents meanwhile
    does not wait for it)."""
    for start in range(0, len(invoice_ids), chunk):
        ids = list(invoice_ids[start:start + chunk])
        with read_transaction(engine) as conn:
            loaded = load_invoices(conn, org_id, ids)
        yield ids, loaded
