"""The driver-level bulk writes (``store.bulk``) store exactly what SQLAlchemy's statements
with the column types would: the same text, the same JSON, the same NULLs, on both databases.

The reference statements below are the ones the billing stage used before (``insert`` and
``update`` executemany through SQLAlchemy Core).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.domain.invoices import DocumentKind, InvoiceLine, TaxSubtotal, VatCategory
from sealbill.store.billing import bulk
from sealbill.store.billing.invoices import DraftInvoice
from sealbill.store.db import inserted_id
from sealbill.store.schema import invoice_lines, invoice_tax_lines, invoices
from tests.support.scenario import account_records, build_scenario

AT = datetime(2026, 11, 2, 9, 30, 15, 123456, tzinfo=UTC)


def _drafts(prefix: str, accounts: list[int], corrected: int) -> list[DraftInvoice]:
    lines = [
        InvoiceLine(1, "Abonnement mensuel — Pro (01/11/2026 au 30/11/2026) « €/mois »",
                    Decimal("1"), Decimal("29.00"), 2900, VatCategory.STANDARD, Decimal("20"),
                    period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)),
        InvoiceLine(2, 'Stockage "Go-mois"\tà\\part', Decimal("8.881735364396654719235364397"),
                    Decimal("0.000012"), 11, VatCategory.STANDARD, Decimal("20")),
    ]
    taxes = [TaxSubtotal(VatCategory.STANDARD, Decimal("2E+1"), 2911, 582)]
    exempt = [TaxSubtotal(VatCategory.EXPORT, Decimal("0"), 500, 0,
                          "TVA non applicable, article 259-1 du CGI", "VATEX-EU-G")]
    export_line = InvoiceLine(1, "Export", Decimal("-1"), Decimal("5.00"), -500,
                              VatCategory.EXPORT, Decimal("0"))
    return [
        DraftInvoice(accounts[0], "A0001", f"{prefix}:1", "EUR", "fr", date(2026, 10, 1),
                     date(2026, 11, 30), lines, taxes, 2911, 582, 3493),
        DraftInvoice(accounts[1], "A0002", f"{prefix}:2", "USD", "en", None, None,
                     [export_line], exempt, 500, 0, 500, kind=DocumentKind.CREDIT_NOTE,
                     corrects_invoice_id=corrected),
        DraftInvoice(accounts[2], "A0003", f"{prefix}:3", "EUR", "fr", date(2026, 11, 1),
                     date(2026, 11, 30), [], [], 0, 0, 0),
    ]


def _reference_insert(conn: Connection, org_id: int, run_id: int | None,
                      drafts: list[DraftInvoice]) -> list[int]:
    ids = []
    for d in drafts:
        ids.append(inserted_id(conn.execute(sa.insert(invoices).values(
            organization_id=org_id, run_id=run_id, account_id=d.account_id,
            kind=d.kind.value, status="draft", billing_key=d.billing_key,
            period_start=d.period_start, period_end=d.period_end, currency=d.currency,
            locale=d.locale, total_excl_minor=d.total_excl_minor,
            tax_total_minor=d.tax_total_minor, total_incl_minor=d.total_incl_minor,
            corrects_invoice_id=d.corrects_invoice_id, account_reference=d.account_reference,
            created_at=AT, oss_eur_minor=d.oss_eur_minor, tax_facts=d.tax_facts))))
    for invoice_id, d in zip(ids, drafts, strict=True):
        for line in d.lines:
            conn.execute(sa.insert(invoice_lines).values(
                organization_id=org_id, invoice_id=invoice_id, position=line.position,
                description=line.description, quantity=line.quantity,
                unit_price=line.unit_price, amount_minor=line.amount_minor,
                vat_category=line.vat_category.value, vat_rate=line.vat_rate,
                period_start=line.period_start, period_end=line.period_end))
        for tax in d.tax_subtotals:
            conn.execute(sa.insert(invoice_tax_lines).values(
                organization_id=org_id, invoice_id=invoice_id, vat_category=tax.category.value,
                vat_rate=tax.rate, base_minor=tax.base_minor, tax_minor=tax.tax_minor,
                exemption_reason=tax.exemption_reason, exemption_code=tax.exemption_code))
    return ids


def _reference_finalize(conn: Connection, rows: list[tuple[int, str, Any, Any]],
                        seller: dict[str, Any]) -> None:
    conn.execute(
        sa.update(invoices)
        .where(invoices.c.id == sa.bindparam("b_id"), invoices.c.status == "draft")
        .values(number=sa.bindparam("number"), status="finalized",
                issue_date=sa.bindparam("issue_date"), due_date=sa.bindparam("due_date"),
                finalized_at=sa.bindparam("finalized_at"),
                seller_snapshot=sa.bindparam("seller_snapshot"),
                buyer_snapshot=sa.bindparam("buyer_snapshot"),
                payment_snapshot=sa.bindparam("payment_snapshot"), notes=sa.bindparam("notes")),
        [{"b_id": i, "number": number, "issue_date": date(2026, 11, 1),
          "due_date": date(2026, 12, 1), "finalized_at": AT, "seller_snapshot": seller,
          "buyer_snapshot": buyer, "payment_snapshot": payment, "notes": []}
         for i, number, buyer, payment in rows])


def _stored(conn: Connection, table: sa.Table, prefix: str) -> list[tuple[Any, ...]]:
    """Every column of the rows of ``prefix``'s invoices as stored: text, and on SQLite the
    storage class too (ids replaced by the billing key; the prefix, also in the invoice
    numbers, replaced by ``_``)."""
    sqlite = conn.dialect.name == "sqlite"
    key = invoices.c.billing_key
    columns = []
    for column in table.c:
        if column.name in ("id", "invoice_id", "billing_key"):
            continue
        columns.append(sa.func.replace(sa.cast(column, sa.Text), prefix, "_"))
        if sqlite:
            columns.append(sa.func.typeof(column))
    query = sa.select(sa.func.replace(key, prefix, "_"), *columns)
    if table is not invoices:
        query = query.join(invoices, invoices.c.id == table.c.invoice_id)
    order = [key, table.c.position] if table is invoice_lines else [key, table.c.id]
    return [tuple(row) for row in conn.execute(
        query.where(key.like(f"{prefix}:%")).order_by(*order))]


@pytest.fixture
def scenario_ids(any_engine: Engine, tmp_path: Path) -> tuple[int, int, list[int], int]:
    records = account_records(3)
    records[2].pop("payment_kind")  # no payment method: the snapshot is JSON null
    records[2].pop("payment_display")
    s = build_scenario(any_engine, accounts=3, files_dir=tmp_path, render=False,
                       records=records)
    return s.org_id, s.run_id, sorted(s.account_ids.values()), s.invoice_ids[0]


def test_bulk_inserts_and_finalization_store_what_sqlalchemy_would(
        any_engine: Engine, scenario_ids: tuple[int, int, list[int], int]) -> None:
    org_id, run_id, accounts, corrected = scenario_ids
    with any_engine.begin() as conn:
        fast = bulk.insert_drafts(conn, org_id, run_id, _drafts("bulk", accounts, corrected),
                                  AT)
        slow = _reference_insert(conn, org_id, run_id, _drafts("ref", accounts, corrected))
        assert fast == sorted(fast)
        for table in (invoices, invoice_lines, invoice_tax_lines):
            assert _stored(conn, table, "bulk") == _stored(conn, table, "ref")
            assert _stored(conn, table, "bulk")
    seller = {"name": "Acme « Cloud »", "address": {"line1": "12 rue", "city": "Paris"},
              "vat_id": None, "legal_info": "SAS au capital de 10 000 €"}
    payments: list[Any] = [{"kind": "card", "display": "Visa •••• 4242"}, None, None]

    def rows(ids: list[int], prefix: str) -> list[tuple[int, str, Any, Any]]:
        return [(i, f"{prefix}-{n}", {"name": f"Client {n} \"SARL\"", "email": None}, pay)
                for n, (i, pay) in enumerate(zip(ids, payments, strict=True))]

    with any_engine.begin() as conn:
        bulk.finalize_rows(conn, rows(fast, "bulk"), issue_date=date(2026, 11, 1),
                           due_date=date(2026, 11, 1) + timedelta(days=30), at=AT,
                           seller=seller, notes=[])
        _reference_finalize(conn, rows(slow, "ref"), seller)
        assert _stored(conn, invoices, "bulk") == _stored(conn, invoices, "ref")
        finalized = conn.execute(sa.select(invoices.c.payment_snapshot).where(
            invoices.c.id.in_(fast)).order_by(invoices.c.id)).scalars().all()
        assert finalized == payments


def test_a_second_draft_for_the_same_billing_key_is_refused(
        any_engine: Engine, scenario_ids: tuple[int, int, list[int], int]) -> None:
    org_id, run_id, accounts, corrected = scenario_ids
    drafts = _drafts("bulk", accounts, corrected)
    with any_engine.begin() as conn:
        bulk.insert_drafts(conn, org_id, run_id, drafts[:1], AT)
    with pytest.raises(sa.exc.IntegrityError), any_engine.begin() as conn:
        bulk.insert_drafts(conn, org_id, run_id, drafts, AT)
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(
            invoices.c.billing_key.like("bulk:%"))).scalar_one() == 1
