"""Exchange rates the operator provides, and the VAT accounting figures of an invoice.

Invariants: a stored rate is never changed (the unique (currency, date) refuses a second one);
an invoice takes the latest rate on or before its issue date; an invoice in another currency
than EUR with VAT cannot be finalized without one (:class:`MissingExchangeRate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.invoices import VatAccounting, vat_in_accounting_currency
from sealbill.store.schema import exchange_rates

ACCOUNTING_CURRENCY = "EUR"  # French VAT is accounted in euros (BT-6)


class MissingExchangeRate(LookupError):
    """Invoices that need an exchange rate the table does not hold; nothing was finalized."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def add_rates(conn: Connection, org_id: int, rows: Iterable[tuple[str, date, Decimal, str]],
              at: datetime) -> int:
    """Store (currency, rate date, rate per EUR, source) rows; returns how many."""
    values = [{"organization_id": org_id, "currency": currency, "rate_date": day,
               "rate": rate, "source": source, "created_at": at}
              for currency, day, rate, source in rows]
    if values:
        conn.execute(sa.insert(exchange_rates), values)
    return len(values)


def rate_on(conn: Connection, org_id: int, currency: str, day: date
            ) -> tuple[Decimal, date, str] | None:
    """The latest (rate, rate date, source) for ``currency`` on or before ``day``."""
    row = conn.execute(
        sa.select(exchange_rates.c.rate, exchange_rates.c.rate_date, exchange_rates.c.source)
        .where(exchange_rates.c.organization_id == org_id,
               exchange_rates.c.currency == currency, exchange_rates.c.rate_date <= day)
        .order_by(exchange_rates.c.rate_date.desc()).limit(1)).first()
    return None if row is None else (row.rate, row.rate_date, row.source)


def vat_accounting_for(conn: Connection, org_id: int, currency: str, tax_total_minor: int,
                       issue_date: date) -> VatAccounting | None:
    """BT-6/BT-111 of an invoice in ``currency``: the VAT converted at the rate of the issue
    date; ``None`` in EUR or without VAT (its EUR VAT is then 0, no rate involved). Raises
    :class:`LookupError` naming the currency and the date when no rate is available."""
    if currency == ACCOUNTING_CURRENCY or tax_total_minor == 0:
        return None
    found = rate_on(conn, org_id, currency, issue_date)
    if found is None:
        raise LookupError(f"no EUR exchange rate for {currency} on or before {issue_date}; "
                          "import one with `sealbill import rates FILE`")
    rate, rate_date, source = found
    return VatAccounting(ACCOUNTING_CURRENCY, rate, rate_date, source,
                         vat_in_accounting_currency(tax_total_minor, currency, rate))


def accounting_to_json(value: VatAccounting | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"currency": value.currency, "rate": format(value.rate, "f"),
            "rate_date": value.rate_date.isoformat(), "source": value.source,
            "tax_total_minor": value.tax_total_minor}


def accounting_from_json(data: dict[str, Any] | None) -> VatAccounting | None:
    if not data:
        return None
    return VatAccounting(data["currency"], Decimal(data["rate"]),
                         date.fromisoformat(data["rate_date"]), data["source"],
                         int(data["tax_total_minor"]))
