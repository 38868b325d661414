"""Invoices and credit notes as immutable value objects.

An :class:`Invoice` is what a finalized row of the ``invoices`` table says, with the seller and
buyer *as they were when it was finalized* (snapshots, never a live join): the PDF, the Factur-X
XML and the mail body are all rendered from this one object, so they cannot disagree.

Invariants (checked by :func:`check_invoice`, which returns every problem at once):
- every line amount and every total is an ``int`` of minor units of the invoice currency;
- VAT is computed per (category, rate) over the *sum* of the line amounts of that group, rounded
  half-up once (EN 16931 BR-CO-17), never per line;
- ``total_excl`` is the sum of line amounts, ``tax_total`` the sum of the per-rate VAT,
  ``total_incl = total_excl + tax_total``;
- a credit note (type code 381) references the number of the invoice it corrects and carries
  positive amounts, as EN 16931 wants: the document type gives the sign.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from sealbill.domain.compact import compact_pickle
from sealbill.domain.money import exponent, to_major, to_minor


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"

    @property
    def type_code(self) -> str:
        """UNTDID 1001 code used by EN 16931 (BT-3)."""
        return "380" if self is DocumentKind.INVOICE else "381"


class VatCategory(StrEnum):
    """UNCL 5305 VAT category codes used by EN 16931 (BT-151)."""

    STANDARD = "S"
    REVERSE_CHARGE = "AE"
    EXPORT = "G"  # export of goods outside the EU (not produced for services)
    EXEMPT = "E"
    ZERO = "Z"
    OUT_OF_SCOPE = "O"  # services whose place of supply is outside the EU (no VAT, no rate)


@compact_pickle
@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    line2: str = ""


@compact_pickle
@dataclass(frozen=True, slots=True)
class Party:
    """A legal party as printed on the document.

    ``legal_id`` is the SIREN for French companies (scheme ``0002``); ``electronic_address`` is
    the party's e-invoicing address (BT-34 / BT-49) with its scheme (``EM`` = email, ``0225``
    = French SIREN-based routing address).
    """

    name: str
    address: Address
    vat_id: str | None = None
    legal_id: str | None = None
    legal_id_scheme: str | None = None
    electronic_address: str | None = None
    electronic_address_scheme: str = "EM"
    email: str | None = None


@compact_pickle
@dataclass(frozen=True, slots=True)
class Seller(Party):
    """The organization that issues the invoice; its IBAN is its own and printed in full."""

    siret: str | None = None
    # BT-33: legal form, share capital and trade register, which French law requires on
    # invoices ("SAS au capital de 10 000 € — RCS Paris 732 829 320").
    legal_info: str | None = None
    iban: str | None = None
    bic: str | None = None
    phone: str | None = None
    website: str | None = None


@compact_pickle
@compact_pickle
@dataclass(frozen=True, slots=True)
class InvoiceLine:
    position: int
    description: str
    quantity: Decimal
    unit_price: Decimal  # major units, may be finer than the currency (0.000012)
    amount_minor: int  # quantity × unit_price rounded half-up once, or the charge-model amount
    vat_category: VatCategory
    vat_rate: Decimal  # percent: Decimal("20"), Decimal("5.5")
    unit_code: str = "C62"  # UN/ECE rec 20 "one"
    period_start: date | None = None
    period_end: date | None = None


@compact_pickle
@dataclass(frozen=True, slots=True)
class TaxSubtotal:
    category: VatCategory
    rate: Decimal
    base_minor: int
    tax_minor: int
    exemption_reason: str | None = None  # BT-120, required for AE, G, E
    exemption_code: str | None = None  # BT-121 (VATEX-EU-AE, VATEX-EU-G, ...)


@compact_pickle
@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """Only the masked form is ever held: brand and last four, or a masked IBAN."""

    kind: str  # "card" | "sepa_debit" | "transfer"
    display: str  # "Visa •••• 4242", "FR76 •••• •••• 0189"


@compact_pickle
@dataclass(frozen=True, slots=True)
class VatAccounting:
    """EN 16931 BT-6 / BT-111: the VAT of an invoice in another currency, in the seller's VAT
    accounting currency (EUR for a French seller), with the exchange rate used and where it
    came from (an operator-provided rate table), as they were at finalization.

    ``rate``: units of the invoice currency for one unit of ``currency`` (1 EUR = 1.0823 USD).
    """

    currency: str
    rate: Decimal
    rate_date: date
    source: str
    tax_total_minor: int


def vat_in_accounting_currency(tax_total_minor: int, currency: str, rate: Decimal,
                               accounting: str = "EUR") -> int:
    """The VAT total converted at ``rate`` (invoice currency per accounting unit), half-up once
    to the accounting currency's minor unit.

    >>> vat_in_accounting_currency(2165, "USD", Decimal("1.0823"))  # 21.65 USD
    2000
    >>> vat_in_accounting_currency(3300, "JPY", Decimal("162.5"))  # 3300 JPY
    2031
    >>> vat_in_accounting_currency(1234, "KWD", Decimal("0.3312"))  # 1.234 KWD
    373
    """
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise ValueError(f"exchange rate must be a positive Decimal, got {rate!r}")
    return to_minor(to_major(tax_total_minor, currency) / rate, accounting)


@compact_pickle
@dataclass(frozen=True, slots=True)
class Invoice:
    kind: DocumentKind
    number: str
    issue_date: date
    due_date: date
    currency: str
    locale: str  # "fr" | "en"
    seller: Seller
    buyer: Party
    account_reference: str  # printed customer reference (BT-46 buyer identifier)
    lines: tuple[InvoiceLine, ...]
    tax_subtotals: tuple[TaxSubtotal, ...]
    total_excl_minor: int
    tax_total_minor: int
    total_incl_minor: int
    period_start: date | None = None
    period_end: date | None = None
    payment_method: PaymentMethod | None = None
    business_process: str = "S1"  # BT-23 French billing mode: S1 = services, invoice only
    corrected_invoice_number: str | None = None  # BT-25, credit notes
    corrected_invoice_date: date | None = None  # BT-26
    notes: tuple[tuple[str, str], ...] = field(default=())  # (subject code, text): PMT, PMD, AAB
    payment_terms: str = ""
    vat_accounting: VatAccounting | None = None  # BT-6/BT-111 when not invoiced in EUR
    #: OSS: the member state whose VAT the lines carry (a consumer there, threshold crossed)
    oss_country: str | None = None
    #: BT-113: the customer's credit applied to this invoice at finalization (0 .. total)
    prepaid_minor: int = 0

    @property
    def amount_due_minor(self) -> int:
        """BT-115: what remains to pay once the customer's credit is applied."""
        return self.total_incl_minor - self.prepaid_minor

    @property
    def type_code(self) -> str:
        return self.kind.type_code

    def heading(self) -> InvoiceHeading:
        return InvoiceHeading(self.kind, self.number, self.currency, self.locale,
                              self.seller.name, self.buyer, self.account_reference,
                              self.total_incl_minor, self.payment_method,
                              self.corrected_invoice_number, self.prepaid_minor)


@dataclass(frozen=True)
class InvoiceHeading:
    """What a message about an invoice names (subject, file name, ledger), without its lines:
    read in one row when sending, where the lines are already inside the rendered PDF."""

    kind: DocumentKind
    number: str
    currency: str
    locale: str
    seller_name: str
    buyer: Party
    account_reference: str
    total_incl_minor: int
    payment_method: PaymentMethod | None = None
    corrected_invoice_number: str | None = None  # BT-25 of a credit note
    prepaid_minor: int = 0  # BT-113: the customer's credit applied

    @property
    def amount_due_minor(self) -> int:
        """BT-115: what remains to pay once the customer's credit is applied."""
        return self.total_incl_minor - self.prepaid_minor


EXEMPTION_CODES: dict[VatCategory, str] = {
    VatCategory.REVERSE_CHARGE: "VATEX-EU-AE",
    VatCategory.EXPORT: "VATEX-EU-G",
    VatCategory.OUT_OF_SCOPE: "VATEX-EU-O",
}


def credit_to_apply(balance_minor: int, total_incl_minor: int) -> int:
    """The part of a customer's credit an invoice takes: all of it up to the invoice's total,
    never more, never below zero (a debit balance is not a credit).

    >>> credit_to_apply(500, 2000), credit_to_apply(5000, 2000), credit_to_apply(-10, 2000)
    (500, 2000, 0)
    """
    return max(0, min(balance_minor, total_incl_minor))


def plain_rate(rate: Decimal) -> Decimal:
    """``rate`` without trailing zeros and without an exponent: ``20``, ``5.5``, ``2.1``.

    ``Decimal("20").normalize()`` is ``2E+1``, which would be stored and printed as such.

    >>> [str(plain_rate(Decimal(t))) for t in ("20.00", "2E+1", "5.50", "0.0")]
    ['20', '20', '5.5', '0']
    """
    return Decimal(format(rate.normalize(), "f"))


def tax_breakdown(
    lines: Iterable[InvoiceLine],
    currency: str,
    exemption_reasons: dict[VatCategory, str] | None = None,
) -> tuple[TaxSubtotal, ...]:
    """VAT per (category, rate) over the sum of the lines of that group, rounded once.

    >>> from decimal import Decimal as D
    >>> ls = [InvoiceLine(1, "a", D(1), D("0.10"), 10, VatCategory.STANDARD, D(20)),
    ...       InvoiceLine(2, "b", D(1), D("0.12"), 12, VatCategory.STANDARD, D(20))]
    >>> [(t.base_minor, t.tax_minor) for t in tax_breakdown(ls, "EUR")]
    [(22, 4)]
    """
    reasons = exemption_reasons or {}
    groups: dict[tuple[VatCategory, Decimal], int] = {}
    for line in lines:
        key = (line.vat_category, plain_rate(line.vat_rate))
        groups[key] = groups.get(key, 0) + line.amount_minor
    subtotals = []
    for (category, rate), base in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        base_major = Decimal(base).scaleb(-exponent(currency))
        tax = to_minor(base_major * rate / 100, currency)
        subtotals.append(
            TaxSubtotal(
                category,
                rate,
                base,
                tax,
                exemption_reason=reasons.get(category),
                exemption_code=EXEMPTION_CODES.get(category),
            )
        )
    return tuple(subtotals)


def totals(subtotals: Sequence[TaxSubtotal]) -> tuple[int, int, int]:
    """(total excluding VAT, VAT total, total including VAT) in minor units."""
    excl = sum(s.base_minor for s in subtotals)
    tax = sum(s.tax_minor for s in subtotals)
    return excl, tax, excl + tax


def check_invoice(invoice: Invoice) -> list[str]:
    """Every arithmetic or reference problem of ``invoice``; an empty list means consistent."""
    problems: list[str] = []
    where = f"invoice {invoice.number or '(draft)'}"
    line_sum = sum(line.amount_minor for line in invoice.lines)
    if line_sum != invoice.total_excl_minor:
        problems.append(f"{where}: total_excl {invoice.total_excl_minor} != lines {line_sum}")
    expected = tax_breakdown(invoice.lines, invoice.currency)
    got = [(s.category, plain_rate(s.rate), s.base_minor, s.tax_minor)
           for s in invoice.tax_subtotals]
    want = [(s.category, s.rate, s.base_minor, s.tax_minor) for s in expected]
    if sorted(got) != sorted(want):
        problems.append(f"{where}: tax_subtotals {got} != recomputed {want}")
    tax_sum = sum(s.tax_minor for s in invoice.tax_subtotals)
    if tax_sum != invoice.tax_total_minor:
        problems.append(f"{where}: tax_total {invoice.tax_total_minor} != subtotals {tax_sum}")
    if invoice.total_excl_minor + invoice.tax_total_minor != invoice.total_incl_minor:
        problems.append(f"{where}: total_incl is not total_excl + tax_total")
    if not 0 <= invoice.prepaid_minor <= max(invoice.total_incl_minor, 0):
        problems.append(f"{where}: credit applied {invoice.prepaid_minor} outside "
                        f"[0, {invoice.total_incl_minor}]")
    if invoice.kind is DocumentKind.CREDIT_NOTE and not invoice.corrected_invoice_number:
        problems.append(f"{where}: a credit note must reference the invoice it corrects")
    for line in invoice.lines:
        if line.vat_category in EXEMPTION_CODES and line.vat_rate != 0:
            problems.append(f"{where} line {line.position}: {line.vat_category} must be 0 %")
    return problems
