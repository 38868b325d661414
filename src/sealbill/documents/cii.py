"""UN/CEFACT CII XML of an invoice, Factur-X profile EN 16931 with the French CTC rules.

Invariants:
- built with lxml, so every user text is escaped; characters XML 1.0 cannot carry are dropped;
- every amount comes from integer minor units through :func:`format_plain` (``1234.56``): the
  XML totals are exactly the :class:`Invoice`'s, never recomputed here;
- element order follows the CII D16B / Factur-X 1.0 XSD sequences (the XSD check enforces it);
- the same invoice gives the same bytes (no clock, no random, stable ordering).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, TypeAlias

from lxml import etree

from sealbill.documents.i18n import label
from sealbill.documents.mentions import (
    card_last_digits,
    electronic_address,
    exemption_code,
    exemption_reason,
    legal_id,
    legal_notes,
    rate_code,
    xml_text,
)
from sealbill.domain.invoices import (
    DocumentKind,
    Invoice,
    InvoiceLine,
    Party,
    Seller,
    TaxSubtotal,
    VatCategory,
)
from sealbill.domain.money import document_digits, to_major

GUIDELINE: Final = "urn:cen.eu:en16931:2017"
TAX_CURRENCY: Final = "EUR"  # French VAT is accounted in euros (BT-6)
NS: Final = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
_RSM, _RAM, _UDT, _QDT = (f"{{{NS[p]}}}" for p in ("rsm", "ram", "udt", "qdt"))
# UNCL 4461 payment means: 58 SEPA credit transfer, 48 bank card, 59 SEPA direct debit.
PAYMENT_MEANS: Final = {"transfer": "58", "card": "48", "sepa_debit": "59"}
# FR-CTC BR-FR-DEC-02/03: quantities carry at most 4 decimals, net prices at most 6.
_QTY_QUANTUM: Final = Decimal("0.0001")
_PRICE_DIGITS: Final = 6

Element: TypeAlias = etree._Element
_TAGS: dict[str, str] = {}


def _el(parent: Element, tag: str, text: str | None = None, **attrs: str) -> Element:
    """Append ``ram:tag`` (or ``rsm:``/``udt:``/``qdt:`` if prefixed) to ``parent``."""
    qualified = _TAGS.get(tag)
    if qualified is None:  # resolved once per tag name: this runs ~30 times per line
        prefix, _, local = tag.rpartition(":")
        qualified = _TAGS[tag] = {"rsm": _RSM, "udt": _UDT, "qdt": _QDT}.get(prefix, _RAM) + local
    node = etree.SubElement(parent, qualified, attrs)
    if text is not None:
        node.text = xml_text(text)
    return node


def _amount(minor: int, currency: str) -> str:
    """``minor`` units with the decimals an EN 16931 amount carries (at most 2: a KWD amount
    is a whole multiple of 10 fils, ``money.document_step``, so nothing is lost)."""
    digits = document_digits(currency)
    return f"{to_major(minor, currency):.{digits}f}"


def _decimal(value: Decimal) -> str:
    """Plain decimal text, never scientific notation (``1E+2`` -> ``100``)."""
    text = f"{value.normalize():f}"
    return "0" if text == "-0" else text


def _date(parent: Element, tag: str, value: date, qualified: bool = False) -> None:
    holder = _el(parent, tag)
    _el(holder, "qdt:DateTimeString" if qualified else "udt:DateTimeString",
        value.strftime("%Y%m%d"), format="102")


def build_cii(invoice: Invoice) -> bytes:
    """CII XML (UTF-8, with declaration) of ``invoice``; assumes ``check_renderable`` passed."""
    root = etree.Element(_RSM + "CrossIndustryInvoice", nsmap=NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "BusinessProcessSpecifiedDocumentContextParameter"), "ID",
        invoice.business_process)
    _el(_el(context, "GuidelineSpecifiedDocumentContextParameter"), "ID", GUIDELINE)
    _document(_el(root, "rsm:ExchangedDocument"), invoice)
    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for line in invoice.lines:
        _line(transaction, line, invoice.currency)
    _agreement(_el(transaction, "ApplicableHeaderTradeAgreement"), invoice)
    _delivery(_el(transaction, "ApplicableHeaderTradeDelivery"), invoice)
    _settlement(_el(transaction, "ApplicableHeaderTradeSettlement"), invoice)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return xml


def _document(doc: Element, invoice: Invoice) -> None:
    _el(doc, "ID", invoice.number)
    _el(doc, "TypeCode", invoice.type_code)
    _date(doc, "IssueDateTime", invoice.issue_date)
    for code, text in legal_notes(invoice):
        note = _el(doc, "IncludedNote")
        _el(note, "Content", text)
        _el(note, "SubjectCode", code)


def _quantity_and_price(line: InvoiceLine) -> tuple[Decimal, Decimal, int]:
    """(billed quantity, net price, price basis quantity) within FR-CTC decimal limits.

    EN 16931 forbids a negative price (BR-27): a credit line carries the sign on the quantity.
    A price finer than 6 decimals is quoted per 10^k units (BT-149) so that no digit is lost.
    """
    quantity, price = line.quantity, line.unit_price
    if price < 0:
        quantity, price = -quantity, -price
    basis = 1
    exp = price.normalize().as_tuple().exponent
    digits = -exp if isinstance(exp, int) else 0
    if digits > _PRICE_DIGITS:
        basis = 10 ** (digits - _PRICE_DIGITS)
        price = price.scaleb(digits - _PRICE_DIGITS)
    # The line amount is authoritative; a quantity finer than 4 decimals is informative only.
    quantity = quantity.quantize(_QTY_QUANTUM, rounding=ROUND_HALF_UP)
    return quantity, price, basis


def _line(transaction: Element, line: InvoiceLine, currency: str) -> None:
    item = _el(transaction, "IncludedSupplyChainTradeLineItem")
    _el(_el(item, "AssociatedDocumentLineDocument"), "LineID", str(line.position))
    _el(_el(item, "SpecifiedTradeProduct"), "Name", line.description)
    quantity, price, basis = _quantity_and_price(line)
    net_price = _el(_el(item, "SpecifiedLineTradeAgreement"), "NetPriceProductTradePrice")
    _el(net_price, "ChargeAmount", _decimal(price))
    if basis != 1:
        _el(net_price, "BasisQuantity", str(basis), unitCode=line.unit_code)
    _el(_el(item, "SpecifiedLineTradeDelivery"), "BilledQuantity", _decimal(quantity),
        unitCode=line.unit_code)
    settlement = _el(item, "SpecifiedLineTradeSettlement")
    tax = _el(settlement, "ApplicableTradeTax")
    _el(tax, "TypeCode", "VAT")
    _el(tax, "CategoryCode", line.vat_category.value)
    if line.vat_category is not VatCategory.OUT_OF_SCOPE:  # BR-O-05: no rate
        _el(tax, "RateApplicablePercent", rate_code(line.vat_rate))
    if line.period_start or line.period_end:
        _period(settlement, line.period_start, line.period_end)
    _el(_el(settlement, "SpecifiedTradeSettlementLineMonetarySummation"), "LineTotalAmount",
        _amount(line.amount_minor, currency))


def _period(parent: Element, start: date | None, end: date | None) -> None:
    period = _el(parent, "BillingSpecifiedPeriod")
    if start:
        _date(period, "StartDateTime", start)
    if end:
        _date(period, "EndDateTime", end)


def _party(parent: Element, tag: str, party: Party, identifier: str | None = None,
           vat_id: bool = True) -> Element:
    node = _el(parent, tag)
    if identifier:
        _el(node, "ID", identifier)
    if isinstance(party, Seller) and party.siret:
        _el(node, "GlobalID", party.siret, schemeID="0009")
    _el(node, "Name", party.name)
    if isinstance(party, Seller) and party.legal_info:
        _el(node, "Description", party.legal_info)  # BT-33
    registration = legal_id(party)
    if registration:
        org = _el(node, "SpecifiedLegalOrganization")
        value, scheme = registration
        _el(org, "ID", value, **({"schemeID": scheme} if scheme else {}))
    _contact(node, party)
    address = _el(node, "PostalTradeAddress")
    _el(address, "PostcodeCode", party.address.postcode)
    _el(address, "LineOne", party.address.line1)
    if party.address.line2:
        _el(address, "LineTwo", party.address.line2)
    _el(address, "CityName", party.address.city)
    _el(address, "CountryID", party.address.country)
    endpoint = electronic_address(party)
    if endpoint:
        _el(_el(node, "URIUniversalCommunication"), "URIID", endpoint[0], schemeID=endpoint[1])
    if party.vat_id and vat_id:
        _el(_el(node, "SpecifiedTaxRegistration"), "ID", party.vat_id, schemeID="VA")
    return node


def _contact(node: Element, party: Party) -> None:
    """BG-6 seller contact: how the buyer reaches the seller. Buyer contacts stay private."""
    if not isinstance(party, Seller) or not (party.phone or party.email):
        return
    contact = _el(node, "DefinedTradeContact")
    if party.phone:
        _el(_el(contact, "TelephoneUniversalCommunication"), "CompleteNumber", party.phone)
    if party.email:
        _el(_el(contact, "EmailURIUniversalCommunication"), "URIID", party.email)


def _agreement(agreement: Element, invoice: Invoice) -> None:
    # BR-O-02: an invoice with "not subject to VAT" lines carries no seller or buyer VAT id
    # (the PDF still prints the seller's, as French law wants).
    vat_ids = all(line.vat_category is not VatCategory.OUT_OF_SCOPE for line in invoice.lines)
    _party(agreement, "SellerTradeParty", invoice.seller, vat_id=vat_ids)
    _party(agreement, "BuyerTradeParty", invoice.buyer, identifier=invoice.account_reference,
           vat_id=vat_ids)


def _delivery(delivery: Element, invoice: Invoice) -> None:
    """BT-72: when the supply was completed, the end of the billed period (else the issue
    date). It also keeps the delivery group non-empty (PEPPOL-EN16931-R008)."""
    event = _el(delivery, "ActualDeliverySupplyChainEvent")
    _date(event, "OccurrenceDateTime", invoice.period_end or invoice.issue_date)


def _settlement(settlement: Element, invoice: Invoice) -> None:
    currency = invoice.currency
    _el(settlement, "PaymentReference", invoice.number)
    if currency != TAX_CURRENCY:
        _el(settlement, "TaxCurrencyCode", TAX_CURRENCY)  # BT-6, FR-CTC BR-FR-CO-12
    _el(settlement, "InvoiceCurrencyCode", currency)
    _payment_means(settlement, invoice)
    for subtotal in invoice.tax_subtotals:
        _tax_subtotal(settlement, subtotal, invoice)
    if invoice.period_start or invoice.period_end:
        _period(settlement, invoice.period_start, invoice.period_end)
    terms = _el(settlement, "SpecifiedTradePaymentTerms")
    if invoice.payment_terms:
        _el(terms, "Description", invoice.payment_terms)
    _date(terms, "DueDateDateTime", invoice.due_date)
    sums = _el(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(sums, "LineTotalAmount", _amount(invoice.total_excl_minor, currency))
    _el(sums, "TaxBasisTotalAmount", _amount(invoice.total_excl_minor, currency))
    _el(sums, "TaxTotalAmount", _amount(invoice.tax_total_minor, currency), currencyID=currency)
    if currency != TAX_CURRENCY:
        # BT-111: the VAT in euros at the rate fixed at finalization (BR-53); check_renderable
        # lets a foreign-currency invoice through without it only when it has no VAT.
        accounting = invoice.vat_accounting
        _el(sums, "TaxTotalAmount", _amount(accounting.tax_total_minor if accounting else 0,
                                            TAX_CURRENCY), currencyID=TAX_CURRENCY)
    _el(sums, "GrandTotalAmount", _amount(invoice.total_incl_minor, currency))
    if invoice.prepaid_minor:  # BT-113: the customer's credit applied
        _el(sums, "TotalPrepaidAmount", _amount(invoice.prepaid_minor, currency))
    _el(sums, "DuePayableAmount", _amount(invoice.amount_due_minor, currency))
    if invoice.kind is DocumentKind.CREDIT_NOTE and invoice.corrected_invoice_number:
        ref = _el(settlement, "InvoiceReferencedDocument")
        _el(ref, "IssuerAssignedID", invoice.corrected_invoice_number)
        if invoice.corrected_invoice_date:
            _date(ref, "FormattedIssueDateTime", invoice.corrected_invoice_date, qualified=True)


def _payment_means(settlement: Element, invoice: Invoice) -> None:
    """BG-16: the buyer's payment method, else a transfer to the seller's IBAN (BR-61)."""
    method = invoice.payment_method
    kind = method.kind if method else "transfer"
    seller = invoice.seller
    if kind == "transfer" and not seller.iban:
        return
    means = _el(settlement, "SpecifiedTradeSettlementPaymentMeans")
    _el(means, "TypeCode", PAYMENT_MEANS.get(kind, "1"))  # 1 = instrument not defined
    if kind in PAYMENT_MEANS:
        _el(means, "Information", label(invoice.locale, f"means_{kind}"))
    if kind == "card" and method:
        digits = card_last_digits(method.display)
        if digits:
            # BR-51: only the last 4 to 6 digits of the card number may be given.
            _el(_el(means, "ApplicableTradeSettlementFinancialCard"), "ID", digits)
    # The seller's account is where a transfer goes; for a card or a direct debit it would
    # be misleading. (A complete BG-19 direct debit would need the mandate reference BT-89,
    # the creditor id BT-90 and the debited IBAN BT-91, which the Invoice does not carry.)
    if seller.iban and kind not in ("card", "sepa_debit"):
        _el(_el(means, "PayeePartyCreditorFinancialAccount"), "IBANID",
            seller.iban.replace(" ", ""))
        if seller.bic:
            _el(_el(means, "PayeeSpecifiedCreditorFinancialInstitution"), "BICID", seller.bic)


def _tax_subtotal(settlement: Element, subtotal: TaxSubtotal, invoice: Invoice) -> None:
    currency = invoice.currency
    tax = _el(settlement, "ApplicableTradeTax")
    _el(tax, "CalculatedAmount", _amount(subtotal.tax_minor, currency))
    _el(tax, "TypeCode", "VAT")
    reason = exemption_reason(subtotal, invoice.locale)
    if reason:
        _el(tax, "ExemptionReason", reason)
    _el(tax, "BasisAmount", _amount(subtotal.base_minor, currency))
    _el(tax, "CategoryCode", subtotal.category.value)
    code = exemption_code(subtotal)
    if code:
        _el(tax, "ExemptionReasonCode", code)
    if subtotal.category is not VatCategory.OUT_OF_SCOPE:  # BR-O rules: no rate
        _el(tax, "RateApplicablePercent", rate_code(subtotal.rate))
