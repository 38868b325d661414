"""French legal mentions and the e-invoicing data derived from an :class:`Invoice`.

The PDF, the CII XML and the mail bodies all take their legal texts, notes, electronic
addresses and identifiers from here, so the printed and the structured invoice cannot disagree.

Invariants:
- :func:`legal_notes` always yields exactly one PMT, one PMD and one AAB note (FR-CTC BR-FR-05
  and BR-FR-06), the invoice's own text winning over the default for the same subject code;
- :func:`check_renderable` lists every reason an invoice cannot become a valid EN 16931 +
  FR-CTC document; rendering refuses such an invoice rather than emit an invalid one;
- :func:`mask_display` never lets a full IBAN or card number through, whatever it is given.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from sealbill.documents.i18n import label
from sealbill.domain.invoices import (
    EXEMPTION_CODES,
    DocumentKind,
    Invoice,
    Party,
    TaxSubtotal,
    VatCategory,
    check_invoice,
)
from sealbill.domain.money import Money, document_step, format_plain


class DocumentError(ValueError):
    """An invoice that cannot be rendered as a valid document; ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


MANDATORY_NOTES: Final = ("PMT", "PMD", "AAB")
# Subject codes FR-CTC allows at most once (BR-FR-06).
_UNIQUE_NOTES: Final = frozenset({"PMT", "PMD", "AAB", "TXD"})
# FR-CTC BR-FR-08 billing frameworks (BT-23).
BUSINESS_PROCESSES: Final = frozenset({
    "B1", "S1", "M1", "B2", "S2", "M2", "S3", "B4", "S4", "M4",
    "S5", "S6", "B7", "S7", "B8", "S8", "M8", "B9", "S9", "M9",
})
# FR-CTC BR-FR-16: the only VAT rates a French invoice may carry.
FRENCH_VAT_RATES: Final = frozenset({
    "0", "10", "13", "20", "8.5", "19.6", "2.1", "5.5", "7", "20.6",
    "1.05", "0.9", "1.75", "9.2", "9.6",
})
_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9+\-_/]{1,35}$")  # BR-FR-01/02 on BT-1, BT-25
_XML_INVALID: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# A run of 8+ digits (spaces allowed inside) or an unmasked IBAN is a secret to hide.
_LONG_NUMBER: Final = re.compile(r"\d(?:[ ]?\d){7,}")
_IBAN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){10,30}\b")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (lxml would refuse them)."""
    return _XML_INVALID.sub("", text)


def rate_code(rate: Decimal) -> str:
    """VAT rate as EN 16931 and FR-CTC want it: ``20``, ``5.5``, ``0`` (never ``2E+1``)."""
    text = f"{rate.normalize():f}"
    return "0" if text in ("-0", "0") else text


def is_business(party: Party) -> bool:
    """A party with a legal or VAT identifier is a business (B2B rules apply)."""
    return bool(party.legal_id or party.vat_id)


def operation_category(invoice: Invoice) -> str:
    """"B" goods, "S" services or "M" mixed, from the French billing framework (BT-23)."""
    return invoice.business_process[:1] if invoice.business_process else "S"


def legal_notes(invoice: Invoice) -> tuple[tuple[str, str], ...]:
    """(subject code, text) notes for BT-21/BT-22: PMT, PMD, AAB first, then the others.

    The invoice's own PMT/PMD/AAB text replaces the default; later duplicates of a code that
    FR-CTC allows once are dropped (first one wins) so the XML never breaks BR-FR-06.
    """
    own: dict[str, str] = {}
    others: list[tuple[str, str]] = []
    for code, text in invoice.notes:
        if code in _UNIQUE_NOTES:
            own.setdefault(code, text)
        else:
            others.append((code, text))
    pmt_key = "note_PMT_b2b" if is_business(invoice.buyer) else "note_PMT_b2c"
    defaults = {
        "PMT": label(invoice.locale, pmt_key),
        "PMD": label(invoice.locale, "note_PMD"),
        "AAB": label(invoice.locale, "note_AAB"),
    }
    notes = [(code, own.get(code, defaults[code])) for code in MANDATORY_NOTES]
    tax_notes = [text for text in (
        label(invoice.locale, "oss_note").format(country=invoice.oss_country)
        if invoice.oss_country else "",
        exchange_rate_note(invoice) if invoice.vat_accounting is not None else "") if text]
    if "TXD" in own:
        notes.append(("TXD", own["TXD"]))
    elif tax_notes:
        notes.append(("TXD", " ".join(tax_notes)))
    return tuple(notes) + tuple(others)


def exchange_rate_note(invoice: Invoice) -> str:
    """The rate, its date and source, and the VAT in euros of an invoice in another currency
    (the French tax code wants the VAT in euros on the invoice, art. 242 nonies A I-10)."""
    accounting = invoice.vat_accounting
    assert accounting is not None
    vat = format_plain(Money(accounting.tax_total_minor, accounting.currency))
    rate = format(accounting.rate.normalize(), "f")
    return label(invoice.locale, "exchange_rate_note").format(
        currency=invoice.currency, rate=rate, date=accounting.rate_date.isoformat(),
        source=accounting.source, vat=vat, accounting=accounting.currency)


def exemption_reason(subtotal: TaxSubtotal, locale: str) -> str | None:
    """BT-120 text: the subtotal's own reason, else the legal mention for its category."""
    if subtotal.exemption_reason:
        return subtotal.exemption_reason
    if subtotal.category in (VatCategory.REVERSE_CHARGE, VatCategory.EXPORT, VatCategory.EXEMPT,
                             VatCategory.OUT_OF_SCOPE):
        return label(locale, f"exempt_{subtotal.category.value}")
    return None


def exemption_code(subtotal: TaxSubtotal) -> str | None:
    """BT-121 code (VATEX-EU-AE, VATEX-EU-G, ...) for exempt and reverse-charge categories."""
    return subtotal.exemption_code or EXEMPTION_CODES.get(subtotal.category)


def electronic_address(party: Party) -> tuple[str, str] | None:
    """(address, scheme) for BT-34/BT-49; a party without one is reached at its email (EM)."""
    if party.electronic_address:
        return party.electronic_address, party.electronic_address_scheme or "EM"
    if party.email:
        return party.email, "EM"
    return None


def legal_id(party: Party) -> tuple[str, str | None] | None:
    """(identifier, ICD scheme) for BT-30/BT-47; a French 9-digit id is a SIREN (0002).

    A foreign identifier without a declared scheme is kept without one (BT-47-1 is optional)
    rather than given a guessed scheme that a platform would route on.
    """
    if not party.legal_id:
        return None
    value = party.legal_id.replace(" ", "")
    if party.legal_id_scheme:
        return value, party.legal_id_scheme
    if party.address.country == "FR" and re.fullmatch(r"\d{9}", value):
        return value, "0002"
    return value, None


def mask_display(display: str) -> str:
    """A payment method display safe to print: any full IBAN or card number is masked.

    Upstream only stores masked forms; this is defense in depth so a full number can never
    reach a PDF or a mail body. Keeps the last four characters, as payment UIs do.
    """

    def hide(match: re.Match[str]) -> str:
        compact = match.group(0).replace(" ", "")
        return f"{compact[:4] if compact[:2].isalpha() else ''} •••• {compact[-4:]}".strip()

    return _LONG_NUMBER.sub(hide, _IBAN.sub(hide, display))


def card_last_digits(display: str) -> str | None:
    """Last 4 digits of a masked card display ("Visa •••• 4242" -> "4242"), for BT-87."""
    digits = re.findall(r"\d", display)
    return "".join(digits[-4:]) if len(digits) >= 4 else None


def check_renderable(invoice: Invoice) -> list[str]:
    """Every reason ``invoice`` cannot become a valid EN 16931 + FR-CTC document."""
    problems = list(check_invoice(invoice))
    where = f"invoice {invoice.number or '(draft)'}"
    problems += _check_ids(invoice, where)
    problems += _check_parties(invoice, where)
    problems += _check_amounts(invoice, where)
    return problems


def _check_ids(invoice: Invoice, where: str) -> list[str]:
    problems = []
    if not _ID_PATTERN.match(invoice.number):
        problems.append(f"{where}: number must be 1-35 of A-Z a-z 0-9 + - _ / (BR-FR-01/02)")
    if invoice.business_process not in BUSINESS_PROCESSES:
        problems.append(f"{where}: business process {invoice.business_process!r} (BR-FR-08)")
    if invoice.due_date < invoice.issue_date:
        problems.append(f"{where}: due date before issue date (BR-FR-CO-07)")
    if invoice.kind is DocumentKind.CREDIT_NOTE:
        ref = invoice.corrected_invoice_number or ""
        if not _ID_PATTERN.match(ref):
            problems.append(f"{where}: corrected invoice number {ref!r} invalid (BR-FR-01/02)")
        if invoice.corrected_invoice_date is None:
            problems.append(f"{where}: a credit note needs the corrected invoice date (BT-26)")
    return problems


def _check_parties(invoice: Invoice, where: str) -> list[str]:
    problems = []
    seller_id = legal_id(invoice.seller)
    if seller_id is None or seller_id[1] != "0002" or not re.fullmatch(r"\d{9}", seller_id[0]):
        problems.append(f"{where}: seller needs a 9-digit SIREN (BR-FR-10)")
    siret = invoice.seller.siret
    if siret and not (re.fullmatch(r"\d{14}", siret) and seller_id and siret[:9] == seller_id[0]):
        problems.append(f"{where}: seller SIRET must be 14 digits starting with the SIREN")
    if electronic_address(invoice.seller) is None:
        problems.append(f"{where}: seller has no electronic address nor email (BR-FR-13)")
    if electronic_address(invoice.buyer) is None:
        problems.append(f"{where}: buyer has no electronic address nor email (BR-FR-12)")
    categories = {s.category for s in invoice.tax_subtotals}
    if categories - {VatCategory.ZERO, VatCategory.OUT_OF_SCOPE} and not invoice.seller.vat_id:
        problems.append(f"{where}: seller VAT id required (BR-S-02, BR-AE-02, BR-G-02)")
    if VatCategory.REVERSE_CHARGE in categories and not invoice.buyer.vat_id:
        problems.append(f"{where}: reverse charge requires the buyer's VAT id (BR-AE-02)")
    return problems


def _check_amounts(invoice: Invoice, where: str) -> list[str]:
    problems = []
    accounting = invoice.vat_accounting
    if invoice.currency != "EUR" and invoice.tax_total_minor != 0 and (
            accounting is None or accounting.currency != "EUR"):
        # BR-FR-CO-12 / BR-53 want the VAT total in EUR too (BT-6/BT-111); without VAT it is
        # 0.00 EUR, with VAT it needs the exchange rate fixed at finalization.
        problems.append(f"{where}: VAT in {invoice.currency} needs its EUR amount (BR-FR-CO-12,"
                        " BT-111): finalize it with an exchange rate")
    step = document_step(invoice.currency)
    amounts = [invoice.total_excl_minor, invoice.tax_total_minor, invoice.total_incl_minor,
               *(line.amount_minor for line in invoice.lines),
               *(s for sub in invoice.tax_subtotals for s in (sub.base_minor, sub.tax_minor))]
    if any(amount % step for amount in amounts):
        problems.append(f"{where}: an amount finer than 2 decimals of {invoice.currency} "
                        "(EN 16931 BR-DEC, BR-FR-DEC-01)")
    for sub in invoice.tax_subtotals:
        if (sub.category is VatCategory.STANDARD and rate_code(sub.rate) not in FRENCH_VAT_RATES
                and invoice.oss_country is None):  # OSS: the consumer's country's rate
            problems.append(f"{where}: VAT rate {sub.rate} is not a French rate (BR-FR-16)")
    return problems
