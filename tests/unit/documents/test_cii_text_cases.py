"""The CII written as text over generated invoices of every tax case: the lxml tree's bytes,
and a valid EN 16931 document.

Generated: every currency sealbill knows (JPY without decimals, KWD/BHD/TND with 3 of which
EN 16931 keeps 2), French VAT at every French rate, intra-EU reverse charge, export, OSS (the
consumer's country's rate), customers outside the EU (category O, no rate, no VAT ids),
invoices in another currency with their VAT in euros (BT-6/BT-111), the customer's credit
applied (BT-113/BT-115), credit notes, 1 to 12 lines, long names and accents, both languages,
every payment means.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.documents.cii import build_cii
from sealbill.documents.cii_text import build_cii_text
from sealbill.documents.mentions import check_renderable
from sealbill.domain.invoices import (
    Address,
    DocumentKind,
    Invoice,
    Party,
    VatAccounting,
    VatCategory,
    vat_in_accounting_currency,
)
from sealbill.domain.money import CURRENCY_EXPONENTS, document_step
from sealbill.domain.taxes import VatContext, VatRateClass
from tests.support.facturx_check import Validator, check_xsd, errors
from tests.unit.documents import samples

CASES = ("domestic", "reverse_charge", "export", "outside_eu", "oss")
OSS_RATES = {"DE": "19", "IT": "22", "ES": "21", "BE": "21", "LU": "17", "HU": "27"}
FRENCH_RATES = ("20", "10", "5.5", "2.1")
NAMES = st.sampled_from([
    "Zoë O'Brien-Lefèvre", "Société Générale d'Électricité & Fils", "Ærøskøbing ApS",
    "Łódź Przędzalnia Sp. z o.o.", "Ñandú Software S.L.", "Ακρόπολις Α.Ε.",
    "Ça & Là <SARL>", "X" * 120, "Établissements " + "Très-Très-Longs " * 8,
])
WORDS = st.text(st.sampled_from("abcdeéèêëàâîïôöùûüçœæ ÉÀÇ-'&"), min_size=1, max_size=60)


def _buyer(case: str, name: str, draw: st.DrawFn) -> Party:
    if case == "domestic":
        return replace(draw(st.sampled_from([samples.FR_BUYER, samples.CONSUMER])), name=name)
    if case == "reverse_charge":
        return replace(samples.DE_BUYER, name=name)
    if case == "oss":
        country = draw(st.sampled_from(sorted(OSS_RATES)))
        return replace(samples.CONSUMER, name=name,
                       address=Address("Hauptstraße 1", "10115", "Stadt", country))
    return replace(draw(st.sampled_from([samples.US_BUYER, samples.RTL_BUYER])), name=name)


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    currency = draw(st.sampled_from(sorted(CURRENCY_EXPONENTS)))
    case = draw(st.sampled_from(CASES))
    buyer = _buyer(case, draw(NAMES), draw)
    business = case == "reverse_charge" or bool(buyer.vat_id or buyer.legal_id)
    category, rates, reason = {
        "domestic": (VatCategory.STANDARD, FRENCH_RATES, None),
        "reverse_charge": (VatCategory.REVERSE_CHARGE, ("0",), None),
        "export": (VatCategory.EXPORT, ("0",), None),
        "oss": (VatCategory.STANDARD, (OSS_RATES.get(buyer.address.country, "20"),), None),
    }.get(case, (None, ("0",), None))
    if category is None:  # outside the EU: out of scope, with the mention rating stores
        treatment = VatContext(buyer.address.country, business, False).treatment(
            VatRateClass.STANDARD)
        category, reason = treatment.category, treatment.exemption_reason
    count = draw(st.integers(1, 12))
    lines = [samples.line(
        k + 1, draw(st.one_of(WORDS, NAMES)), draw(st.sampled_from(["1", "3", "12.5", "1500"])),
        draw(st.sampled_from(["49.00", "0.0004", "1990", "12.345", "0.01"])), category,
        draw(st.sampled_from(rates)), currency=currency) for k in range(count)]
    kind = draw(st.sampled_from([DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE]))
    invoice = samples.build_invoice(
        "AV-2026-0042" if kind is DocumentKind.CREDIT_NOTE else "F-2026-000042", lines, buyer,
        locale=draw(st.sampled_from(["fr", "en"])), kind=kind, currency=currency,
        payment_method=draw(st.sampled_from([samples.TRANSFER, samples.CARD, samples.SEPA,
                                             None])),
        corrected=("F-2026-000007", date(2026, 10, 1)) if kind is DocumentKind.CREDIT_NOTE
        else None)
    if reason:
        invoice = replace(invoice, tax_subtotals=tuple(
            replace(t, exemption_reason=reason) for t in invoice.tax_subtotals))
    if case == "oss":
        invoice = replace(invoice, oss_country=buyer.address.country)
    if currency != "EUR" and invoice.tax_total_minor:
        rate = draw(st.sampled_from([Decimal("1.0823"), Decimal("162.5"), Decimal("0.3312")]))
        invoice = replace(invoice, vat_accounting=VatAccounting(
            "EUR", rate, date(2026, 10, 30), "BCE",
            vat_in_accounting_currency(invoice.tax_total_minor, currency, rate)))
    if kind is DocumentKind.INVOICE and draw(st.booleans()):
        step = document_step(currency)
        share = draw(st.sampled_from([Decimal("0.1"), Decimal("0.5"), Decimal(1)]))
        prepaid = int(invoice.total_incl_minor * share) // step * step
        invoice = replace(invoice, prepaid_minor=prepaid)
    return invoice


@settings(max_examples=400, deadline=None)
@given(invoices())
def test_every_tax_case_gives_the_lxml_bytes(invoice: Invoice) -> None:
    assert check_renderable(invoice) == []
    assert build_cii_text(invoice) == build_cii(invoice)


@settings(max_examples=60, deadline=None)
@given(invoice=invoices())
def test_every_tax_case_passes_the_xsd_and_the_en16931_schematron(
        schematron: Validator, invoice: Invoice) -> None:
    xml = build_cii_text(invoice)
    findings = check_xsd(xml) or [f for f in schematron.schematron(xml)
                                  if f.source == "en16931"]
    assert errors(findings) == [], "\n".join(map(str, findings))


def test_kept_lines_give_the_lxml_bytes_whatever_came_first() -> None:
    """Lines are written once a process and kept by value: equal lines spelled differently
    (2 and 2.000) share a text, a line differing in any value does not."""
    base = samples.domestic()
    first = base.lines[0]
    variants = [replace(first, quantity=first.quantity + Decimal("0.000")),
                replace(first, quantity=first.quantity.normalize()),
                replace(first, unit_price=first.unit_price + Decimal("0.01")),
                replace(first, quantity=-first.quantity, unit_price=-first.unit_price),
                replace(first, description=first.description + " "),
                replace(first, vat_rate=first.vat_rate + Decimal("0.0"))]
    for variant in [*variants, *reversed(variants)]:
        invoice = replace(base, lines=(variant, *base.lines[1:]))
        assert build_cii_text(invoice) == build_cii(invoice)
