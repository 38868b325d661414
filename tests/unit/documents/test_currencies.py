"""Invoices in other currencies: ISO 4217 minor units (JPY 0, KWD/BHD/TND 3 decimals) and, with
VAT, the VAT in euros (BT-6/BT-111) with the exchange rate and its source on the invoice.

Each case is rendered whole (PDF/A-3 + Factur-X) and its XML passes the XSD, the EN 16931 and
the French CTC schematrons with no finding."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from sealbill.documents.cii import NS
from sealbill.documents.mentions import check_renderable
from sealbill.documents.render import render_invoice
from sealbill.domain.invoices import Invoice, VatAccounting, vat_in_accounting_currency
from sealbill.domain.money import to_minor
from tests.support.facturx_check import Validator, check_pdf
from tests.unit.documents.samples import CONSUMER, build_invoice, line
from tests.unit.documents.test_pdf import pages_text, squash

SUMS = ("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/"
        "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
RATES = {"USD": Decimal("1.0823"), "JPY": Decimal("162.5"), "KWD": Decimal("0.3312"),
         "TND": Decimal("3.3711")}
PRICES = {"USD": "19.90", "JPY": "1990", "KWD": "12.345", "TND": "7.777"}


def with_vat_in_euros(currency: str, locale: str = "fr") -> Invoice:
    invoice = build_invoice(f"F-{currency}-1", [
        line(1, "Abonnement", "3", PRICES[currency], currency=currency),
        line(2, "Option", "1", PRICES[currency], rate="5.5", currency=currency)],
        CONSUMER, currency=currency, locale=locale)
    accounting = VatAccounting("EUR", RATES[currency], date(2025, 3, 28), "BCE",
                               vat_in_accounting_currency(invoice.tax_total_minor, currency,
                                                          RATES[currency]))
    return replace(invoice, vat_accounting=accounting)


@pytest.mark.parametrize("currency", sorted(RATES))
def test_invoice_with_vat_in_another_currency_renders_a_valid_facturx(
        currency: str, schematron: Validator) -> None:
    invoice = with_vat_in_euros(currency)
    rendered = render_invoice(invoice)
    findings = check_pdf(rendered.pdf)
    assert findings == [], "\n".join(map(str, findings))
    root = etree.fromstring(rendered.xml)
    vat = {v.get("currencyID"): v.text for v in root.xpath(f"{SUMS}/ram:TaxTotalAmount",
                                                          namespaces=NS)}
    assert invoice.vat_accounting is not None
    euros = Decimal(invoice.vat_accounting.tax_total_minor).scaleb(-2)
    assert vat["EUR"] == f"{euros:.2f}" and Decimal(vat["EUR"]) > 0
    assert root.xpath("//ram:TaxCurrencyCode/text()", namespaces=NS) == ["EUR"]
    text = squash("".join(pages_text(rendered.pdf)))
    assert squash(f"1 EUR = {RATES[currency]} {currency} (BCE, 2025-03-28)") in text


def test_amounts_use_the_currency_minor_unit() -> None:
    assert to_minor(Decimal("1990.4"), "JPY") == 1990
    kwd = with_vat_in_euros("KWD")
    # 3 × 12.345 = 37.035 → 37.04 KWD = 37040 fils: multiples of 10 fils (EN 16931: 2 decimals)
    assert kwd.lines[0].amount_minor == 37040
    assert all(a % 10 == 0 for a in (kwd.total_excl_minor, kwd.tax_total_minor))
    jpy = with_vat_in_euros("JPY")
    assert jpy.lines[0].amount_minor == 5970 and jpy.tax_total_minor == 1194 + 109
    text = squash("".join(pages_text(render_invoice(kwd).pdf)))
    assert squash("37,040") in text  # printed with the 3 decimals of the fils


def test_vat_in_another_currency_without_a_rate_is_refused_with_the_reason() -> None:
    invoice = replace(with_vat_in_euros("USD"), vat_accounting=None)
    problems = check_renderable(invoice)
    assert any("BT-111" in p and "exchange rate" in p for p in problems)


@pytest.mark.parametrize(("buyer", "article"), [("business", "259-1"), ("consumer", "259 B")])
def test_a_customer_outside_the_eu_is_out_of_scope_category_o_with_the_mention(
        buyer: str, article: str, schematron: Validator) -> None:
    from sealbill.domain.invoices import VatCategory
    from sealbill.domain.taxes import VatContext, VatRateClass
    from tests.unit.documents.samples import RTL_BUYER, US_BUYER

    treatment = VatContext("US", buyer == "business", False).treatment(VatRateClass.STANDARD)
    party = US_BUYER if buyer == "business" else RTL_BUYER
    invoice = build_invoice(f"F-O-{buyer}", [
        line(1, "Abonnement", "1", "49.00", treatment.category, "0", currency="USD")],
        party, currency="USD", locale="en")
    # As rating stores it: the mention is the breakdown's exemption reason (BT-120).
    invoice = replace(invoice, tax_subtotals=tuple(
        replace(t, exemption_reason=treatment.exemption_reason) for t in invoice.tax_subtotals))
    assert invoice.tax_subtotals[0].category is VatCategory.OUT_OF_SCOPE
    rendered = render_invoice(invoice)
    findings = check_pdf(rendered.pdf)
    assert findings == [], "\n".join(map(str, findings))
    root = etree.fromstring(rendered.xml)
    assert root.xpath("//ram:CategoryCode/text()", namespaces=NS) == ["O", "O"]
    assert root.xpath("//ram:ExemptionReasonCode/text()", namespaces=NS) == ["VATEX-EU-O"]
    assert root.xpath("//ram:SellerTradeParty/ram:SpecifiedTaxRegistration",
                      namespaces=NS) == []
    text = squash("".join(pages_text(rendered.pdf)))
    assert squash(f"article {article}") in text
    assert invoice.seller.vat_id and squash(invoice.seller.vat_id) in text
