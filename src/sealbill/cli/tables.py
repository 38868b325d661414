"""Rich renderings of invoices and previews for people at a terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from sealbill.domain.invoices import Invoice
from sealbill.domain.money import Money, format_plain


def _amount(minor: int, currency: str) -> str:
    return f"{format_plain(Money(minor, currency))} {currency}"


def invoice_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table("number", "kind", "status", "account", "issued", "due", "total incl. VAT")
    for row in rows:
        table.add_row(row["number"] or "(draft)", row["kind"], row["status"],
                      f"{row['account_reference']} {row['account_name']}",
                      str(row["issue_date"] or ""), str(row["due_date"] or ""),
                      _amount(row["total_incl_minor"], row["currency"]))
    return table


def preview_table(previews: Sequence[Mapping[str, Any]]) -> Table:
    table = Table("account", "lines", "excl. VAT", "VAT", "incl. VAT")
    for p in previews:
        table.add_row(p["account_reference"], str(len(p["lines"])),
                      _amount(p["total_excl_minor"], p["currency"]),
                      _amount(p["tax_total_minor"], p["currency"]),
                      _amount(p["total_incl_minor"], p["currency"]))
    return table


def print_invoice(console: Console, invoice: Invoice) -> None:
    console.print(f"[bold]{invoice.kind.value} {invoice.number}[/] — {invoice.buyer.name} "
                  f"({invoice.account_reference}); issued {invoice.issue_date}, "
                  f"due {invoice.due_date}")
    lines = Table("#", "description", "quantity", "unit price", "amount", "VAT")
    for line in invoice.lines:
        lines.add_row(str(line.position), line.description, str(line.quantity),
                      str(line.unit_price), _amount(line.amount_minor, invoice.currency),
                      f"{line.vat_category.value} {line.vat_rate} %")
    console.print(lines)
    for tax in invoice.tax_subtotals:
        console.print(f"  VAT {tax.category.value} {tax.rate} % on "
                      f"{_amount(tax.base_minor, invoice.currency)}: "
                      f"{_amount(tax.tax_minor, invoice.currency)}")
    console.print(f"  total excl. VAT {_amount(invoice.total_excl_minor, invoice.currency)}, "
                  f"VAT {_amount(invoice.tax_total_minor, invoice.currency)}, "
                  f"[bold]total {_amount(invoice.total_incl_minor, invoice.currency)}[/]")
