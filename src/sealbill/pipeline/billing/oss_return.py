"""The quarterly OSS return: per member state of consumption and per rate, the taxable amount
and the VAT of the seller's finalized OSS invoices (credit notes deducted), in euros.

An invoice in another currency is converted at the rate stored with it at finalization (its
BT-111 for the VAT, the same rate for the taxable amount).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.invoices import plain_rate
from sealbill.domain.money import to_major, to_minor
from sealbill.store.billing.exchange_rates import accounting_from_json
from sealbill.store.schema import invoice_tax_lines, invoices


def quarter_bounds(text: str) -> tuple[date, date]:
    """``2026-Q4`` -> (2026-10-01, 2027-01-01)."""
    try:
        year_text, q_text = text.upper().split("-Q")
        year, quarter = int(year_text), int(q_text)
        if not 1 <= quarter <= 4:
            raise ValueError
    except ValueError:
        raise ValueError(f"quarter: expected YYYY-Qn, got {text!r}") from None
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end


def oss_return(conn: Connection, org_id: int, quarter: str) -> list[dict[str, Any]]:
    """Rows ``{country, rate, taxable_eur_minor, vat_eur_minor, documents}`` sorted by country
    and rate."""
    start, end = quarter_bounds(quarter)
    rows = conn.execute(
        sa.select(invoices.c.id, invoices.c.kind, invoices.c.currency, invoices.c.tax_facts,
                  invoices.c.vat_accounting)
        .where(invoices.c.organization_id == org_id, invoices.c.oss_eur_minor.is_not(None),
               invoices.c.status.in_(("finalized", "void")),
               invoices.c.issue_date >= start, invoices.c.issue_date < end)).all()
    wanted = {int(r.id): r for r in rows
              if r.tax_facts and r.tax_facts.get("scheme") == "oss"}
    totals: dict[tuple[str, Decimal], list[int]] = {}
    if not wanted:
        return []
    taxes = conn.execute(sa.select(invoice_tax_lines).where(
        invoice_tax_lines.c.organization_id == org_id,
        invoice_tax_lines.c.invoice_id.in_(sorted(wanted)))).all()
    for tax in taxes:
        row = wanted[int(tax.invoice_id)]
        sign = -1 if row.kind == "credit_note" else 1
        base, vat = _in_euros(row, tax.base_minor), _in_euros(row, tax.tax_minor)
        key = (str(row.tax_facts["country"]), plain_rate(tax.vat_rate))
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += sign * base
        entry[1] += sign * vat
        entry[2] += 1
    return [{"country": country, "rate": format(rate, "f"), "taxable_eur_minor": t[0],
             "vat_eur_minor": t[1], "documents": t[2]}
            for (country, rate), t in sorted(totals.items())]


def _in_euros(row: Any, minor: int) -> int:
    if row.currency == "EUR":
        return minor
    accounting = accounting_from_json(row.vat_accounting)
    if accounting is None:
        raise ValueError(f"invoice {row.id}: in {row.currency} without its exchange rate")
    return to_minor(to_major(minor, row.currency) / accounting.rate, "EUR")
