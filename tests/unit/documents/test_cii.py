"""The CII XML: valid against the XSD and both schematrons, and faithful to the Invoice."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from sealbill.documents.cii import NS, build_cii
from sealbill.documents.mentions import xml_text
from sealbill.domain.invoices import Invoice
from sealbill.domain.money import Money, format_plain
from tests.support.facturx_check import Validator, check_xml, check_xsd
from tests.unit.documents import samples
from tests.unit.documents.samples import CORPUS, Corpus

HEADER = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
SUMS = f"{HEADER}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def text(root: etree._Element, path: str) -> str:
    values = root.xpath(f"{path}/text()", namespaces=NS)
    assert len(values) == 1, f"{path}: {values}"
    return str(values[0])


def plain(minor: int, currency: str = "EUR") -> str:
    return format_plain(Money(minor, currency))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_sample_passes_xsd_en16931_and_fr_ctc_with_no_finding(
    name: str, corpus: Corpus, schematron: Validator
) -> None:
    _, rendered = corpus[name]
    findings = check_xml(rendered.xml)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_xml_totals_and_vat_breakdown_are_the_invoices(name: str, corpus: Corpus) -> None:
    invoice, rendered = corpus[name]
    root, cur = parse(rendered.xml), invoice.currency
    assert text(root, f"{SUMS}/ram:LineTotalAmount") == plain(invoice.total_excl_minor, cur)
    assert text(root, f"{SUMS}/ram:TaxBasisTotalAmount") == plain(invoice.total_excl_minor, cur)
    vat = f"{SUMS}/ram:TaxTotalAmount[@currencyID='{cur}']"
    assert text(root, vat) == plain(invoice.tax_total_minor, cur)
    assert text(root, f"{SUMS}/ram:GrandTotalAmount") == plain(invoice.total_incl_minor, cur)
    assert text(root, f"{SUMS}/ram:DuePayableAmount") == plain(invoice.total_incl_minor, cur)
    taxes = root.xpath(f"{HEADER}/ram:ApplicableTradeTax", namespaces=NS)
    got = [(text(t, "ram:CategoryCode"), Decimal(text(t, "ram:RateApplicablePercent")),
            text(t, "ram:BasisAmount"), text(t, "ram:CalculatedAmount")) for t in taxes]
    want = [(s.category.value, s.rate, plain(s.base_minor, cur), plain(s.tax_minor, cur))
            for s in invoice.tax_subtotals]
    assert got == want
    assert len(root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS)) == len(
        invoice.lines)


def test_mixed_rates_give_one_vat_breakdown_per_rate(corpus: Corpus) -> None:
    root = parse(corpus["mixed_rates_en"][1].xml)
    rates = root.xpath(f"{HEADER}/ram:ApplicableTradeTax/ram:RateApplicablePercent/text()",
                       namespaces=NS)
    assert sorted(rates) == ["10", "2.1", "20", "5.5"]


def test_credit_note_is_type_381_and_references_the_corrected_invoice(corpus: Corpus) -> None:
    invoice, rendered = corpus["credit_note_fr"]
    root = parse(rendered.xml)
    assert text(root, "rsm:ExchangedDocument/ram:TypeCode") == "381"
    ref = f"{HEADER}/ram:InvoiceReferencedDocument"
    assert text(root, f"{ref}/ram:IssuerAssignedID") == invoice.corrected_invoice_number
    assert text(root, f"{ref}/ram:FormattedIssueDateTime/qdt:DateTimeString") == "20250331"
    # EN 16931: a credit note carries positive amounts, the type code gives the sign.
    assert Decimal(text(root, f"{SUMS}/ram:GrandTotalAmount")) > 0


def test_reverse_charge_has_vatex_code_reason_and_both_vat_ids(corpus: Corpus) -> None:
    invoice, rendered = corpus["reverse_charge_en"]
    root = parse(rendered.xml)
    tax = f"{HEADER}/ram:ApplicableTradeTax"
    assert text(root, f"{tax}/ram:CategoryCode") == "AE"
    assert text(root, f"{tax}/ram:ExemptionReasonCode") == "VATEX-EU-AE"
    assert "autoliquidation" in text(root, f"{tax}/ram:ExemptionReason").lower()
    assert text(root, f"{tax}/ram:CalculatedAmount") == "0.00"
    buyer = "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID"
    assert text(root, buyer) == invoice.buyer.vat_id


def test_export_is_exempt_with_vatex_eu_g(corpus: Corpus) -> None:
    root = parse(corpus["export_en"][1].xml)
    tax = f"{HEADER}/ram:ApplicableTradeTax"
    assert text(root, f"{tax}/ram:CategoryCode") == "G"
    assert text(root, f"{tax}/ram:ExemptionReasonCode") == "VATEX-EU-G"
    assert "262 I" in text(root, f"{tax}/ram:ExemptionReason")


def test_french_ctc_data_is_present(corpus: Corpus) -> None:
    invoice, rendered = corpus["domestic_fr"]
    root = parse(rendered.xml)
    notes = root.xpath("rsm:ExchangedDocument/ram:IncludedNote/ram:SubjectCode/text()",
                       namespaces=NS)
    assert sorted(notes) == ["AAB", "PMD", "PMT"]
    assert "40 €" in text(root, "rsm:ExchangedDocument/ram:IncludedNote[ram:SubjectCode='PMT']"
                                "/ram:Content")
    context = "rsm:ExchangedDocumentContext"
    assert text(root, f"{context}/ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID"
                ) == invoice.business_process
    assert text(root, f"{context}/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"
                ) == "urn:cen.eu:en16931:2017"
    seller = "//ram:SellerTradeParty"
    assert text(root, f"{seller}/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']"
                ) == invoice.seller.legal_id
    assert text(root, f"{seller}/ram:URIUniversalCommunication/ram:URIID[@schemeID='0225']"
                ) == invoice.seller.electronic_address
    assert text(root, "//ram:BuyerTradeParty/ram:URIUniversalCommunication/ram:URIID"
                ) == invoice.buyer.electronic_address
    assert text(root, "//ram:BuyerTradeParty/ram:ID") == invoice.account_reference


def test_invoice_notes_override_defaults_without_duplicates() -> None:
    invoice = replace(samples.domestic(), notes=(
        ("PMD", "Pénalités : 3 fois le taux légal."), ("PMD", "doublon"), ("REG", "RCS Paris")))
    root = parse(build_cii(invoice))
    assert root.xpath("count(//ram:IncludedNote[ram:SubjectCode='PMD'])", namespaces=NS) == 1
    assert text(root, "//ram:IncludedNote[ram:SubjectCode='PMD']/ram:Content"
                ) == "Pénalités : 3 fois le taux légal."
    assert text(root, "//ram:IncludedNote[ram:SubjectCode='REG']/ram:Content") == "RCS Paris"
    assert check_xml(build_cii(invoice)) == []


def test_hostile_text_is_escaped_and_reads_back_unchanged(corpus: Corpus) -> None:
    invoice, rendered = corpus["hostile_names_fr"]
    root = parse(rendered.xml)
    assert text(root, "//ram:BuyerTradeParty/ram:Name") == invoice.buyer.name
    assert text(root, "//ram:IncludedSupplyChainTradeLineItem[1]//ram:Name"
                ) == invoice.lines[0].description
    assert b"<b>bold</b>" not in rendered.xml


def test_price_finer_than_six_decimals_is_quoted_per_basis_quantity(corpus: Corpus) -> None:
    invoice, rendered = corpus["fine_price_fr"]
    price = "//ram:NetPriceProductTradePrice"
    root = parse(rendered.xml)
    charge, basis = Decimal(text(root, f"{price}/ram:ChargeAmount")), Decimal(
        text(root, f"{price}/ram:BasisQuantity"))
    assert charge / basis == invoice.lines[0].unit_price
    assert len(text(root, f"{price}/ram:ChargeAmount").split(".")[1]) <= 6


def test_the_same_invoice_gives_the_same_xml() -> None:
    assert build_cii(samples.mixed_rates()) == build_cii(samples.mixed_rates())


def _tamper(xml: bytes, xpath: str, value: str | None) -> bytes:
    root = parse(xml)
    node = root.xpath(xpath, namespaces=NS)[0]
    if value is None:
        node.getparent().remove(node)
    else:
        node.text = value
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def test_validator_reports_a_missing_french_mandatory_note(corpus: Corpus) -> None:
    xml = _tamper(corpus["domestic_fr"][1].xml,
                  "//ram:IncludedNote[ram:SubjectCode='PMT']", None)
    rules = [f.rule for f in check_xml(xml)]
    assert any(rule.startswith("BR-FR-05") for rule in rules), rules


def test_validator_reports_inconsistent_totals(corpus: Corpus) -> None:
    xml = _tamper(corpus["domestic_fr"][1].xml, f"//{SUMS.split('/')[-1]}/ram:GrandTotalAmount",
                  "999.99")
    assert "BR-CO-15" in {f.rule.strip("[]") for f in check_xml(xml)}


def test_validator_reports_xsd_violations(corpus: Corpus) -> None:
    xml = _tamper(corpus["domestic_fr"][1].xml, "rsm:ExchangedDocument/ram:TypeCode", None)
    assert [f.source for f in check_xsd(xml)] == ["xsd"]


names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
    max_size=80,
).filter(lambda s: xml_text(s).strip() != "")


@settings(max_examples=40, deadline=None)
@given(name=names, description=names)
def test_any_text_round_trips_through_the_xml(name: str, description: str) -> None:
    base: Invoice = samples.consumer()
    invoice = replace(base, buyer=replace(base.buyer, name=name),
                      lines=(replace(base.lines[0], description=description),))
    root = parse(build_cii(invoice))
    assert text(root, "//ram:BuyerTradeParty/ram:Name") == xml_text(name)
    assert text(root, "//ram:IncludedSupplyChainTradeLineItem//ram:Name") == xml_text(
        description)


def test_foreign_currency_without_vat_declares_zero_vat_in_euros(corpus: Corpus) -> None:
    invoice, rendered = corpus["export_usd_en"]
    root = parse(rendered.xml)
    assert text(root, f"{HEADER}/ram:InvoiceCurrencyCode") == "USD"
    assert text(root, f"{HEADER}/ram:TaxCurrencyCode") == "EUR"
    vat = root.xpath(f"{SUMS}/ram:TaxTotalAmount", namespaces=NS)
    assert {(v.get("currencyID"), v.text) for v in vat} == {("USD", "0.00"), ("EUR", "0.00")}
    assert text(root, f"{SUMS}/ram:GrandTotalAmount") == format_plain(
        Money(invoice.total_incl_minor, "USD"))
    assert "TaxCurrencyCode" not in corpus["domestic_fr"][1].xml.decode()
