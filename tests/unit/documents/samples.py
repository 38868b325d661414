"""Sample invoices for the document tests: every VAT case, both languages, hostile text.

Totals are never written by hand: :func:`build_invoice` computes the VAT breakdown with
``tax_breakdown`` and the totals with ``totals``, as the billing pipeline does, and refuses an
invoice that ``check_invoice`` finds inconsistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

from stdnum import luhn

from sealbill.domain.invoices import (
    Address,
    DocumentKind,
    Invoice,
    InvoiceLine,
    Party,
    PaymentMethod,
    Seller,
    VatCategory,
    check_invoice,
    tax_breakdown,
    totals,
)
from sealbill.domain.money import to_minor

if TYPE_CHECKING:
    from sealbill.documents.render import RenderedDocuments

Corpus: TypeAlias = "dict[str, tuple[Invoice, RenderedDocuments]]"

S, AE, G = VatCategory.STANDARD, VatCategory.REVERSE_CHARGE, VatCategory.EXPORT


def siren(stem: str) -> str:
    """A Luhn-valid SIREN from an 8-digit stem."""
    return stem + luhn.calc_check_digit(stem)


def fr_vat(siren_number: str) -> str:
    key = (12 + 3 * (int(siren_number) % 97)) % 97
    return f"FR{key:02d}{siren_number}"


SELLER_SIREN = siren("81234567")
SELLER = Seller(
    name="Atelier Numérique SAS",
    address=Address("12 rue de la Paix", "75002", "Paris", "FR", line2="Bâtiment B"),
    vat_id=fr_vat(SELLER_SIREN),
    legal_id=SELLER_SIREN,
    legal_id_scheme="0002",
    electronic_address=SELLER_SIREN,
    electronic_address_scheme="0225",
    email="factures@atelier-numerique.example",
    siret=SELLER_SIREN + "00017",
    legal_info="SAS au capital de 10 000 € — RCS Paris",
    iban="FR7630006000011234567890189",
    bic="AGRIFRPPXXX",
    phone="+33 1 23 45 67 89",
    website="https://atelier-numerique.example",
)

BUYER_SIREN = siren("44306184")
BUYER_IBAN = "FR1420041010050500013M02606"
FR_BUYER = Party(
    name="Boulangerie L'Épi d'Or & Fils",
    address=Address("3, place de l'Église", "69002", "Lyon", "FR"),
    vat_id=fr_vat(BUYER_SIREN),
    legal_id=BUYER_SIREN,
    legal_id_scheme="0002",
    electronic_address=BUYER_SIREN,
    electronic_address_scheme="0225",
    email="compta@epidor.example",
)
DE_BUYER = Party(
    name="Müller & Söhne GmbH",
    address=Address("Königsallee 27", "40212", "Düsseldorf", "DE"),
    vat_id="DE811907980",
    email="rechnungen@mueller-soehne.example",
)
US_BUYER = Party(
    name='Acme "Rockets" Inc.',
    address=Address("1209 Orange Street", "19801", "Wilmington", "US"),
    email="ap@acme.example",
)
CONSUMER = Party(
    name="Zoë O'Brien-Lefèvre",
    address=Address("8 allée des Tilleuls", "33000", "Bordeaux", "FR"),
    email="zoe@example.org",
)
LONG_WORD = "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz" * 2
HOSTILE_BUYER = Party(
    name='Café "L\'Ami" & Co. #1 $5 <b>bold</b> *not* _em_ @ref',
    address=Address(f"Zone {LONG_WORD}", "13001", "Marseille", "FR", line2="שלום — مرحبا"),
    vat_id=fr_vat(BUYER_SIREN),
    legal_id=BUYER_SIREN,
    email="hostile@example.org",
)
RTL_BUYER = Party(
    name="شركة الأمل للتجارة",
    address=Address("רחוב הרצל 10", "6473910", "תל אביב", "IL"),
    email="billing@amal.example",
)

CARD = PaymentMethod("card", "Visa •••• 4242")
SEPA = PaymentMethod("sepa_debit", "FR14 •••• •••• 2606")
TRANSFER = PaymentMethod("transfer", "Virement")
ISSUE = date(2025, 3, 31)


def line(
    position: int,
    description: str,
    quantity: str,
    price: str,
    category: VatCategory = S,
    rate: str = "20",
    period: tuple[date, date] | None = None,
    currency: str = "EUR",
) -> InvoiceLine:
    """A line whose amount is quantity × price rounded once, as the rating engine does."""
    qty, unit = Decimal(quantity), Decimal(price)
    return InvoiceLine(
        position=position,
        description=description,
        quantity=qty,
        unit_price=unit,
        amount_minor=to_minor(qty * unit, currency),
        vat_category=category,
        vat_rate=Decimal(rate),
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
    )


def build_invoice(
    number: str,
    lines: Sequence[InvoiceLine],
    buyer: Party = FR_BUYER,
    *,
    locale: str = "fr",
    kind: DocumentKind = DocumentKind.INVOICE,
    payment_method: PaymentMethod | None = TRANSFER,
    corrected: tuple[str, date] | None = None,
    notes: tuple[tuple[str, str], ...] = (),
    issue: date = ISSUE,
    currency: str = "EUR",
) -> Invoice:
    """A consistent invoice: VAT per rate by ``tax_breakdown``, totals by ``totals``."""
    subtotals = tax_breakdown(lines, currency)
    excl, tax, incl = totals(subtotals)
    invoice = Invoice(
        kind=kind,
        number=number,
        issue_date=issue,
        due_date=issue + timedelta(days=30),
        currency=currency,
        locale=locale,
        seller=SELLER,
        buyer=buyer,
        account_reference="CUST-0042",
        lines=tuple(lines),
        tax_subtotals=subtotals,
        total_excl_minor=excl,
        tax_total_minor=tax,
        total_incl_minor=incl,
        period_start=date(2025, 3, 1),
        period_end=ISSUE,
        payment_method=payment_method,
        corrected_invoice_number=corrected[0] if corrected else None,
        corrected_invoice_date=corrected[1] if corrected else None,
        notes=notes,
    )
    problems = check_invoice(invoice)
    assert not problems, problems
    return invoice


def domestic() -> Invoice:
    return build_invoice("FA-2025-0001", [
        line(1, "Abonnement Pro — mars 2025", "1", "49.00"),
        line(2, "Utilisateurs supplémentaires", "7", "8.50"),
        line(3, "Requêtes API (au-delà du forfait)", "1250000", "0.000012"),
    ])


def mixed_rates() -> Invoice:
    return build_invoice("INV-2025-0002", [
        line(1, "Consulting day", "2", "650.00"),
        line(2, "Training session", "1", "320.00", rate="10"),
        line(3, "Printed manuals", "12", "14.99", rate="5.5"),
        line(4, "Press subscription", "1", "9.90", rate="2.1"),
    ], locale="en", payment_method=CARD)


def reverse_charge() -> Invoice:
    return build_invoice("INV-2025-0003", [
        line(1, "Platform licence (EU B2B)", "1", "1200.00", AE, "0"),
        line(2, "Support hours", "3.5", "95.00", AE, "0"),
    ], DE_BUYER, locale="en", payment_method=SEPA)


def export() -> Invoice:
    return build_invoice("INV-2025-0004", [
        line(1, "Hosting (outside the EU)", "1", "300.00", G, "0"),
    ], US_BUYER, locale="en")


def export_usd() -> Invoice:
    """Foreign currency without VAT: the VAT total in EUR (BT-111) is exactly 0.00."""
    return build_invoice("INV-2025-0010", [
        line(1, "Platform licence (annual)", "1", "4800.00", G, "0", currency="USD"),
        line(2, "Overage", "12500", "0.0004", G, "0", currency="USD"),
    ], US_BUYER, locale="en", currency="USD")


def export_jpy() -> Invoice:
    """A currency without minor units."""
    return build_invoice("INV-2025-0011", [
        line(1, "Hosting (Tokyo region)", "3", "15000", G, "0", currency="JPY"),
    ], replace(US_BUYER, name="Sample K.K.", address=Address(
        "1-1 Chiyoda", "100-0001", "Tokyo", "JP")), locale="en", currency="JPY")


def export_fr() -> Invoice:
    return build_invoice("FA-2025-0005", [
        line(1, "Hébergement hors UE", "1", "300.00", G, "0"),
        line(2, "Autoliquidation test", "1", "10.00", AE, "0"),
    ], replace(DE_BUYER, name="Müller & Söhne GmbH (DE)"))


def credit_note(locale: str = "fr") -> Invoice:
    return build_invoice("AV-2025-0001", [
        line(1, "Remboursement partiel — utilisateurs", "2", "8.50"),
    ], kind=DocumentKind.CREDIT_NOTE, corrected=("FA-2025-0001", ISSUE), locale=locale)


def consumer() -> Invoice:
    return build_invoice("FA-2025-0006", [
        line(1, "Abonnement Particulier", "1", "9.99"),
    ], CONSUMER, payment_method=CARD)


def hostile() -> Invoice:
    return build_invoice("FA-2025-0007", [
        line(1, f'Prestation "spéciale" & <urgent> #tag $100 \\ {LONG_WORD}', "1", "100.00"),
        line(2, "שירות ענן — خدمة سحابية", "2", "10.00", rate="5.5"),
    ], HOSTILE_BUYER)


def rtl() -> Invoice:
    return build_invoice("INV-2025-0008", [
        line(1, "Cloud service — خدمة سحابية", "1", "250.00", G, "0"),
    ], RTL_BUYER, locale="en")


def long_invoice(count: int = 300) -> Invoice:
    start = date(2025, 3, 1)
    lines = [
        line(i, f"Compteur n° {i:03d} — consommation mensuelle", str(i % 17 + 1),
             f"{(i * 7) % 90 + 0.25:.2f}", rate="20" if i % 3 else "10",
             period=(start, ISSUE))
        for i in range(1, count + 1)
    ]
    return build_invoice("FA-2025-0300", lines)


def fine_price() -> Invoice:
    """A unit price finer than the 6 decimals FR-CTC allows (quoted per basis quantity)."""
    return build_invoice("FA-2025-0009", [
        line(1, "Événements traités", "3000000", "0.0000123"),
    ])


CORPUS = {
    "domestic_fr": domestic,
    "mixed_rates_en": mixed_rates,
    "reverse_charge_en": reverse_charge,
    "export_en": export,
    "export_usd_en": export_usd,
    "export_jpy_en": export_jpy,
    "export_and_reverse_charge_fr": export_fr,
    "credit_note_fr": credit_note,
    "credit_note_en": lambda: credit_note("en"),
    "consumer_fr": consumer,
    "hostile_names_fr": hostile,
    "rtl_en": rtl,
    "fine_price_fr": fine_price,
    "long_300_lines_fr": long_invoice,
}
